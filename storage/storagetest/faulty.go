package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/regsweep/regsweep/storage"
)

// Op is a kind of storage.Store operation that Faulty counts and fails.
type Op uint8

// The operations Faulty counts. Delete counts every key on its own, however
// the caller batches them.
const (
	OpReadDir Op = iota
	OpWalk
	OpStat
	OpReadFile
	OpDelete
	OpPutIfAbsent
	OpRemoveEmptyDirs
	OpCreate
	numOps
)

var opNames = [numOps]string{"ReadDir", "Walk", "Stat", "ReadFile", "Delete", "PutIfAbsent", "RemoveEmptyDirs", "Create"}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", o)
}

// ReadOps are the operations a walk makes.
var ReadOps = []Op{OpReadDir, OpWalk, OpStat, OpReadFile}

// ErrInjected is wrapped by every error Faulty makes up.
var ErrInjected = errors.New("injected fault")

// Fault says which operation fails: the Nth (1-based) of kind Op, counting
// only the keys Faulty.Counted selects. With Stop, that operation and every
// later one, of any kind and any key, fail too (a process that died, a
// backend gone), and Faulty.OnStop is called once. Err, when set, is the
// error returned (wrapped with the key); otherwise one wrapping ErrInjected.
//
// With Key, N counts only the operations of kind Op on that key: the Nth
// read of one file, whatever the order a run reads the others in (a
// filesystem walk reads in the order of its folders' inodes, which differ
// between two copies of a registry).
type Fault struct {
	Op   Op
	N    int
	Key  string
	Stop bool
	Err  error
}

// Faulty is a storage.Store that injects faults into another, as kopia's
// FaultyStorage does: it fails the Nth operation of chosen kinds, or stops
// working altogether from there on. It counts what it is asked, so that a
// test can first count the operations of a clean run and then fail each one
// in turn. It is safe for concurrent use.
type Faulty struct {
	storage.Store

	// Counted selects the keys (and folders) whose operations count and
	// may fail; nil counts them all. Set before the first call.
	Counted func(key string) bool
	// OnStop is called once, when a Stop fault fires, for example to cancel
	// the context of the run under test. Set before the first call.
	OnStop func()
	// Record keeps every counted call, for Calls. Set before the first call.
	Record bool
	// Before, when set, is called before every counted operation that no
	// fault fails, from the goroutine making it, so that a test can act (push
	// an image, say) at a chosen instant of a run. Set before the first call.
	Before func(Call)

	mu      sync.Mutex
	faults  []Fault
	counts  [numOps]int
	perKey  map[Call]int // operations counted per kind and key, N zero
	stopped bool
	fired   []string // keys of the injected failures, in order
	calls   []Call
}

// Call is one counted operation: the Nth of its kind, on Key.
type Call struct {
	Op  Op
	N   int
	Key string
}

var (
	_ storage.Wrapper        = (*Faulty)(nil)
	_ storage.DirRemover     = (*Faulty)(nil)
	_ storage.DirTimer       = (*Faulty)(nil)
	_ storage.ChildStatter   = (*Faulty)(nil)
	_ storage.NameStatter    = (*Faulty)(nil)
	_ storage.KeyWalker      = (*Faulty)(nil)
	_ storage.Opener         = (*Faulty)(nil)
	_ storage.MultipartStore = (*Faulty)(nil)
	_ storage.Trasher        = (*Faulty)(nil)
	_ storage.Creator        = (*Faulty)(nil)
)

// Capabilities offers what the wrapped store offers, each through Faulty:
// counted, and failed, as the operation it stands for (a listing with folder
// times or child stats as ReadDir and a Stat a child, name stats as a Stat
// a name, a key listing or a
// multipart listing as Walk, a stream as ReadFile, an abort or a move into
// the trash as Delete of its key), so that a test fails the operations of the walk production makes.
// Creating files goes through Faulty's Create (counted as OpCreate);
// flushing passes through uncounted.
func (f *Faulty) Capabilities() storage.Capabilities {
	in := storage.CapabilitiesOf(f.Store)
	c := storage.Capabilities{Syncer: in.Syncer}
	if in.Creator != nil {
		c.Creator = f
	}
	if in.DirTimer != nil {
		c.DirTimer = f
	}
	if in.ChildStatter != nil {
		c.ChildStatter = f
	}
	if in.NameStatter != nil {
		c.NameStatter = f
	}
	if in.KeyWalker != nil {
		c.KeyWalker = f
	}
	if in.Opener != nil {
		c.Opener = f
	}
	if in.Multipart != nil {
		c.Multipart = f
	}
	if in.DirRemover != nil {
		c.DirRemover = f
	}
	if in.Trasher != nil {
		c.Trasher = f
	}
	return c
}

// NewFaulty wraps s with the given faults; with none it only counts.
func NewFaulty(s storage.Store, faults ...Fault) *Faulty {
	return &Faulty{Store: s, faults: faults}
}

// UnderV2 is a Faulty.Counted that selects the registry's own keys (under
// docker/registry/v2), leaving out regsweep's lock at the storage root.
func UnderV2(key string) bool {
	return key == storage.V2 || strings.HasPrefix(key, storage.V2+"/")
}

// Count returns how many operations of kind op were counted so far.
func (f *Faulty) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// Calls returns the counted calls so far, in order, when Record is set.
func (f *Faulty) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Stopped reports whether a Stop fault fired.
func (f *Faulty) Stopped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stopped
}

// Fired returns the keys whose operation failed by injection, in order;
// after a stop, only the key that stopped it.
func (f *Faulty) Fired() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.fired...)
}

// check counts one operation on key and returns the error to inject, if any.
func (f *Faulty) check(op Op, key string) error {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return fmt.Errorf("%s %s: %w: storage stopped", op, key, ErrInjected)
	}
	if f.Counted != nil && !f.Counted(key) {
		f.mu.Unlock()
		return nil
	}
	f.counts[op]++
	n := f.counts[op]
	if f.Record {
		f.calls = append(f.calls, Call{Op: op, N: n, Key: key})
	}
	var stop func()
	var err error
	var before func(Call)
	nKey := 0
	for _, ft := range f.faults {
		if ft.Key != "" && ft.Op == op && ft.Key == key {
			if f.perKey == nil {
				f.perKey = map[Call]int{}
			}
			f.perKey[Call{Op: op, Key: key}]++
			nKey = f.perKey[Call{Op: op, Key: key}]
			break
		}
	}
	for _, ft := range f.faults {
		if ft.Op != op || ft.Key == "" && ft.N != n || ft.Key != "" && (ft.Key != key || ft.N != nKey) {
			continue
		}
		cause := ft.Err
		if cause == nil {
			cause = ErrInjected
		}
		err = fmt.Errorf("%s %s: %w (%s #%d)", op, key, cause, op, n)
		if !errors.Is(err, ErrInjected) {
			err = fmt.Errorf("%w [%w]", err, ErrInjected)
		}
		f.fired = append(f.fired, key)
		if ft.Stop {
			f.stopped = true
			stop = f.OnStop
		}
		break
	}
	if err == nil {
		before = f.Before
	}
	f.mu.Unlock()
	if stop != nil {
		stop()
	}
	if before != nil {
		before(Call{Op: op, N: n, Key: key})
	}
	return err
}

// ReadDir lists dir unless a fault says otherwise.
func (f *Faulty) ReadDir(ctx context.Context, dir string) ([]storage.Entry, error) {
	if err := f.check(OpReadDir, dir); err != nil {
		return nil, err
	}
	return f.Store.ReadDir(ctx, dir)
}

// errNoCapability is returned by a capability's method called on a Faulty
// whose wrapped store lacks it (Capabilities does not offer it then).
func errNoCapability(what string) error {
	return fmt.Errorf("faulty: the wrapped store has no %s", what)
}

// ReadDirTime lists dir as ReadDir does, with the same faults, through the
// wrapped store's folder times.
func (f *Faulty) ReadDirTime(ctx context.Context, dir string) ([]storage.Entry, time.Time, error) {
	dt := storage.CapabilitiesOf(f.Store).DirTimer
	if dt == nil {
		return nil, time.Time{}, errNoCapability("folder times")
	}
	if err := f.check(OpReadDir, dir); err != nil {
		return nil, time.Time{}, err
	}
	return dt.ReadDirTime(ctx, dir)
}

// ModTimes stats each name as Stat would, one counted Stat a name with the
// same faults, through the wrapped store's ModTimes.
func (f *Faulty) ModTimes(ctx context.Context, dir string, names []string, fn func(int, time.Time, error)) error {
	dt := storage.CapabilitiesOf(f.Store).DirTimer
	if dt == nil {
		return errNoCapability("folder times")
	}
	for i, name := range names {
		if err := f.check(OpStat, dir+"/"+name); err != nil {
			fn(i, time.Time{}, err)
			continue
		}
		if err := dt.ModTimes(ctx, dir, names[i:i+1], func(_ int, t time.Time, err error) { fn(i, t, err) }); err != nil {
			return err
		}
	}
	return nil
}

// StatChildren lists dir as ReadDir does and stats each folder entry's
// file name as Stat does, with the same faults, through the wrapped store's
// StatChildren: a fault on a child's stat reaches fn as that child's error.
func (f *Faulty) StatChildren(ctx context.Context, dir, name string, fn func(storage.Entry, storage.Object, error) error) error {
	cs := storage.CapabilitiesOf(f.Store).ChildStatter
	if cs == nil {
		return errNoCapability("child stats")
	}
	if err := f.check(OpReadDir, dir); err != nil {
		return err
	}
	return cs.StatChildren(ctx, dir, name, func(e storage.Entry, o storage.Object, err error) error {
		if e.Type == storage.TypeDir {
			if ferr := f.check(OpStat, dir+"/"+e.Name+"/"+name); ferr != nil {
				return fn(e, storage.Object{}, ferr)
			}
		}
		return fn(e, o, err)
	})
}

// StatNames stats each name as Stat would, one counted Stat a name with the
// same faults, through the wrapped store's StatNames.
func (f *Faulty) StatNames(ctx context.Context, dir string, names []string, fn func(int, storage.Object, error)) error {
	ns := storage.CapabilitiesOf(f.Store).NameStatter
	if ns == nil {
		return errNoCapability("name stats")
	}
	for i, name := range names {
		if err := f.check(OpStat, dir+"/"+name); err != nil {
			fn(i, storage.Object{}, err)
			continue
		}
		if err := ns.StatNames(ctx, dir, names[i:i+1], func(_ int, o storage.Object, err error) { fn(i, o, err) }); err != nil {
			return err
		}
	}
	return nil
}

// WalkKeys lists the keys under prefix through the wrapped store's key
// listing, counted and failed as a Walk.
func (f *Faulty) WalkKeys(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	kw := storage.CapabilitiesOf(f.Store).KeyWalker
	if kw == nil {
		return errNoCapability("key listing")
	}
	if err := f.check(OpWalk, prefix); err != nil {
		return err
	}
	return kw.WalkKeys(ctx, prefix, fn)
}

// WalkMultipartUploads lists the wrapped store's multipart uploads under
// prefix, counted and failed as a Walk.
func (f *Faulty) WalkMultipartUploads(ctx context.Context, prefix string, fn func(storage.MultipartUpload) error) error {
	ms := storage.CapabilitiesOf(f.Store).Multipart
	if ms == nil {
		return errNoCapability("multipart uploads")
	}
	if err := f.check(OpWalk, prefix); err != nil {
		return err
	}
	return ms.WalkMultipartUploads(ctx, prefix, fn)
}

// AbortMultipartUpload aborts u in the wrapped store, counted and failed
// as a Delete of its key.
func (f *Faulty) AbortMultipartUpload(ctx context.Context, u storage.MultipartUpload) error {
	ms := storage.CapabilitiesOf(f.Store).Multipart
	if ms == nil {
		return errNoCapability("multipart uploads")
	}
	if err := f.check(OpDelete, u.Key); err != nil {
		return err
	}
	return ms.AbortMultipartUpload(ctx, u)
}

// Open streams key through the wrapped store, counted and failed as a
// ReadFile.
func (f *Faulty) Open(ctx context.Context, key string) (io.ReadCloser, storage.Object, error) {
	op := storage.CapabilitiesOf(f.Store).Opener
	if op == nil {
		return nil, storage.Object{}, errNoCapability("streams")
	}
	if err := f.check(OpReadFile, key); err != nil {
		return nil, storage.Object{}, err
	}
	return op.Open(ctx, key)
}

// Walk lists prefix unless a fault says otherwise; the walk counts as one
// operation.
func (f *Faulty) Walk(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	if err := f.check(OpWalk, prefix); err != nil {
		return err
	}
	return f.Store.Walk(ctx, prefix, fn)
}

// Stat stats key unless a fault says otherwise.
func (f *Faulty) Stat(ctx context.Context, key string) (storage.Object, error) {
	if err := f.check(OpStat, key); err != nil {
		return storage.Object{}, err
	}
	return f.Store.Stat(ctx, key)
}

// ReadFile reads key unless a fault says otherwise.
func (f *Faulty) ReadFile(ctx context.Context, key string, limit int64) ([]byte, storage.Object, error) {
	if err := f.check(OpReadFile, key); err != nil {
		return nil, storage.Object{}, err
	}
	return f.Store.ReadFile(ctx, key, limit)
}

// PutIfAbsent writes key unless a fault says otherwise.
func (f *Faulty) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := f.check(OpPutIfAbsent, key); err != nil {
		return err
	}
	return f.Store.PutIfAbsent(ctx, key, data)
}

// Delete counts every key; the keys no fault hits go to the wrapped store
// as one batch, in their order, and the others fail. After a stop, nothing
// more is deleted.
func (f *Faulty) Delete(ctx context.Context, keys []string, done func(string, error)) {
	pass := make([]string, 0, len(keys))
	for _, k := range keys {
		if err := f.check(OpDelete, k); err != nil {
			done(k, err)
			continue
		}
		pass = append(pass, k)
	}
	if len(pass) > 0 {
		f.Store.Delete(ctx, pass, done)
	}
}

// RemoveEmptyDirs forwards to the wrapped store's, unless a fault says
// otherwise.
func (f *Faulty) RemoveEmptyDirs(ctx context.Context, dir string) error {
	dr := storage.CapabilitiesOf(f.Store).DirRemover
	if dr == nil {
		return errNoCapability("folders")
	}
	if err := f.check(OpRemoveEmptyDirs, dir); err != nil {
		return err
	}
	return dr.RemoveEmptyDirs(ctx, dir)
}

// Trash counts every key as an OpDelete (a move into the trash takes the
// key out of the layout as a delete does: a test failing or stopping at
// the Nth delete does so in a run that trashes too); the keys no fault hits
// go to the wrapped store's Trash as one batch. A fault's Err wrapping
// storage.ErrNoTrash stands for a trash on another filesystem. A wrapped
// store without a trash answers storage.ErrNoTrash for every key.
func (f *Faulty) Trash(ctx context.Context, run string, keys []string, done func(string, error)) {
	t := storage.CapabilitiesOf(f.Store).Trasher
	ok := t != nil
	pass := make([]string, 0, len(keys))
	for _, k := range keys {
		if err := f.check(OpDelete, k); err != nil {
			done(k, err)
			continue
		}
		pass = append(pass, k)
	}
	switch {
	case len(pass) == 0:
	case !ok:
		for _, k := range pass {
			done(k, fmt.Errorf("trash %s: %w", k, storage.ErrNoTrash))
		}
	default:
		t.Trash(ctx, run, pass, done)
	}
}

// errNoTrasher is the error of the trash methods over a store without one.
var errNoTrasher = errors.New("faulty: the wrapped store has no trash")

// Trashes forwards to the wrapped store's.
func (f *Faulty) Trashes(ctx context.Context) ([]string, error) {
	if t := storage.CapabilitiesOf(f.Store).Trasher; t != nil {
		return t.Trashes(ctx)
	}
	return nil, nil
}

// TrashParts forwards to the wrapped store's.
func (f *Faulty) TrashParts(ctx context.Context, run string) ([]string, error) {
	if t := storage.CapabilitiesOf(f.Store).Trasher; t != nil {
		return t.TrashParts(ctx, run)
	}
	return nil, errNoTrasher
}

// RemoveTrash forwards to the wrapped store's, after a stop fails.
func (f *Faulty) RemoveTrash(ctx context.Context, run, part string) error {
	if f.Stopped() {
		return fmt.Errorf("free trash %s: %w: storage stopped", run, ErrInjected)
	}
	if t := storage.CapabilitiesOf(f.Store).Trasher; t != nil {
		return t.RemoveTrash(ctx, run, part)
	}
	return errNoTrasher
}

// TrashUnits forwards to the wrapped store's.
func (f *Faulty) TrashUnits(ctx context.Context, run string, bad func(string, error)) ([][]string, error) {
	if t := storage.CapabilitiesOf(f.Store).Trasher; t != nil {
		return t.TrashUnits(ctx, run, bad)
	}
	return nil, errNoTrasher
}

// RestoreTrash forwards to the wrapped store's.
func (f *Faulty) RestoreTrash(ctx context.Context, run string, units []string, done func(string, error)) {
	t := storage.CapabilitiesOf(f.Store).Trasher
	if t == nil {
		for _, u := range units {
			done(u, errNoTrasher)
		}
		return
	}
	t.RestoreTrash(ctx, run, units, done)
}

// PruneTrash forwards to the wrapped store's.
func (f *Faulty) PruneTrash(ctx context.Context, run string) error {
	if t := storage.CapabilitiesOf(f.Store).Trasher; t != nil {
		return t.PruneTrash(ctx, run)
	}
	return errNoTrasher
}

// Create writes key through the wrapped store's Create unless a fault says
// otherwise; a wrapped store that cannot create fails as it would.
func (f *Faulty) Create(ctx context.Context, key string, r io.Reader, size int64, mtime time.Time) error {
	if err := f.check(OpCreate, key); err != nil {
		return err
	}
	c := storage.CapabilitiesOf(f.Store).Creator
	if c == nil {
		return fmt.Errorf("create %s: %w", key, storage.ErrCannotCreate)
	}
	return c.Create(ctx, key, r, size, mtime)
}

// CheckCreate forwards to the wrapped store's CheckCreate, uncounted.
func (f *Faulty) CheckCreate(ctx context.Context, key string) error {
	c := storage.CapabilitiesOf(f.Store).Creator
	if c == nil {
		return fmt.Errorf("create %s: %w", key, storage.ErrCannotCreate)
	}
	return c.CheckCreate(ctx, key)
}
