package storage

// Capabilities are the optional interfaces of a store, each nil where the
// store has none. Beside the methods of Store, what a store can do is
// probed here and only here: CapabilitiesOf is the one way to ask, so a
// store that wraps another (ReadOnly, a test's fault injector) passes every
// capability of what it wraps through, and applies its own rule to each
// (ReadOnly's writes fail), instead of silently dropping what a type
// assertion on the wrapper would not find.
type Capabilities struct {
	// Reads.
	DirTimer     DirTimer
	ChildStatter ChildStatter
	NameStatter  NameStatter
	KeyWalker    KeyWalker
	Opener       Opener
	// Multipart lists multipart uploads (a read) and aborts them (a write).
	Multipart MultipartStore

	// Writes, beside Store's Delete and PutIfAbsent.
	DirRemover DirRemover
	Trasher    Trasher
	Creator    Creator
	Syncer     Syncer
}

// Wrapper is implemented by a store that wraps another: it says which
// capabilities it offers, those of the store it wraps, each going through
// the wrapper. Capabilities is called whenever a capability is probed, from
// many goroutines at once.
type Wrapper interface {
	Store
	Capabilities() Capabilities
}

// CapabilitiesOf returns what s can do beside Store's methods: a Wrapper's
// own answer, or the optional interfaces s implements.
func CapabilitiesOf(s Store) Capabilities {
	if w, ok := s.(Wrapper); ok {
		return w.Capabilities()
	}
	var c Capabilities
	c.DirTimer, _ = s.(DirTimer)
	c.ChildStatter, _ = s.(ChildStatter)
	c.NameStatter, _ = s.(NameStatter)
	c.KeyWalker, _ = s.(KeyWalker)
	c.Opener, _ = s.(Opener)
	c.Multipart, _ = s.(MultipartStore)
	c.DirRemover, _ = s.(DirRemover)
	c.Trasher, _ = s.(Trasher)
	c.Creator, _ = s.(Creator)
	c.Syncer, _ = s.(Syncer)
	return c
}
