package walker

import (
	"context"
	"sync"
)

// pool runs tasks on a fixed number of workers. Unlike errgroup with
// SetLimit, a task may add more tasks without blocking, so recursive
// listings cannot deadlock. The first error cancels the pool's context.
type pool struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []func(context.Context) error
	first   []func(context.Context) error // run before anything in queue
	pending int                           // queued or running
	err     error
}

func newPool() *pool {
	p := &pool{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// Go queues f. It never blocks.
func (p *pool) Go(f func(context.Context) error) {
	p.mu.Lock()
	p.queue = append(p.queue, f)
	p.pending++
	p.mu.Unlock()
	p.cond.Signal()
}

// GoFirst queues f ahead of every task queued by Go. It never blocks.
func (p *pool) GoFirst(f func(context.Context) error) {
	p.mu.Lock()
	p.first = append(p.first, f)
	p.pending++
	p.mu.Unlock()
	p.cond.Signal()
}

// Run runs the queued tasks, and those they add, on n workers until none is
// left or one fails; it returns the first error.
func (p *pool) Run(ctx context.Context, n int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err == nil {
			p.err = ctx.Err()
		}
		p.cond.Broadcast()
	})
	defer stop()
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Go(func() {
			for {
				p.mu.Lock()
				for len(p.queue)+len(p.first) == 0 && p.pending > 0 && p.err == nil {
					p.cond.Wait()
				}
				if p.pending == 0 || p.err != nil {
					p.mu.Unlock()
					p.cond.Broadcast()
					return
				}
				var f func(context.Context) error
				if len(p.first) > 0 {
					f, p.first = p.first[0], p.first[1:]
				} else {
					f = p.queue[len(p.queue)-1]
					p.queue = p.queue[:len(p.queue)-1]
				}
				p.mu.Unlock()

				err := f(ctx)

				p.mu.Lock()
				p.pending--
				if err != nil && p.err == nil {
					p.err = err
					cancel()
				}
				p.mu.Unlock()
				p.cond.Broadcast()
			}
		})
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.err
	p.queue, p.first, p.pending, p.err = nil, nil, 0, nil
	return err
}
