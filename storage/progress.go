package storage

// Counter receives progress. Add may be called from many goroutines at once;
// SetMax is called before a stage fans out.
type Counter interface {
	Add(n int64)
	SetMax(n int64)
}

// Nop is a Counter that discards everything.
type Nop struct{}

// Add does nothing.
func (Nop) Add(int64) {}

// SetMax does nothing.
func (Nop) SetMax(int64) {}
