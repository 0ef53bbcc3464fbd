package sweep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage"
)

// ranked is a storage.Trasher holding units in restore's ranks; it records
// which rank each RestoreTrash batch came from, and how many ran at once.
type ranked struct {
	ranks    [][]string
	mu       sync.Mutex
	rankOf   map[string]int
	order    []int // the rank of each batch, in the order batches started
	inFlight int
	most     int
	pruned   bool
	// during, when set, runs inside each batch with the number in flight.
	during func(inFlight int)
}

func newRanked(sizes ...int) *ranked {
	r := &ranked{rankOf: map[string]int{}}
	for rank, n := range sizes {
		var units []string
		for i := range n {
			u := fmt.Sprintf("r%d/u%05d", rank, i)
			units = append(units, u)
			r.rankOf[u] = rank
		}
		r.ranks = append(r.ranks, units)
	}
	return r
}

func (r *ranked) Trash(context.Context, string, []string, func(string, error)) {}
func (r *ranked) Trashes(context.Context) ([]string, error)                    { return nil, nil }
func (r *ranked) TrashParts(context.Context, string) ([]string, error)         { return nil, nil }
func (r *ranked) RemoveTrash(context.Context, string, string) error            { return nil }
func (r *ranked) TrashUnits(_ context.Context, _ string, bad func(string, error)) ([][]string, error) {
	bad("docker/registry/v2/nonsense", errors.New("not a unit"))
	return r.ranks, nil
}
func (r *ranked) PruneTrash(context.Context, string) error { r.pruned = true; return nil }
func (r *ranked) RestoreTrash(ctx context.Context, _ string, units []string, done func(string, error)) {
	r.mu.Lock()
	r.inFlight++
	r.most = max(r.most, r.inFlight)
	r.order = append(r.order, r.rankOf[units[0]])
	n := r.inFlight
	r.mu.Unlock()
	if r.during != nil {
		r.during(n)
	}
	for _, u := range units {
		if r.rankOf[u] != r.rankOf[units[0]] {
			done(u, errors.New("a batch mixing ranks"))
			continue
		}
		done(u, ctx.Err())
	}
	r.mu.Lock()
	r.inFlight--
	r.mu.Unlock()
}

var _ storage.Trasher = (*ranked)(nil)

// TestRestoreTrashRanksInOrderJobsAtOnce: every unit is reported once, a
// rank's batches all start after the rank before ended, and a rank's
// batches run Jobs at once.
func TestRestoreTrashRanksInOrderJobsAtOnce(t *testing.T) {
	r := newRanked(1000, 700, 3, 1)
	const jobs = 4
	// Each of rank 0's first batches waits for the others: the test
	// fails, instead of hanging, if they never run at once.
	all := make(chan struct{})
	var once sync.Once
	r.during = func(n int) {
		if n == jobs {
			once.Do(func() { close(all) })
		}
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
	}
	got := map[string]error{}
	err := RestoreTrash(context.Background(), r, "run", jobs, func(u string, err error) {
		if _, dup := got[u]; dup {
			t.Errorf("%s reported twice", u)
		}
		got[u] = err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000+700+3+1+1 {
		t.Errorf("%d units reported, want 1705 (one not a unit)", len(got))
	}
	for u, err := range got {
		if _, ok := r.rankOf[u]; ok && err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	if !slices.IsSorted(r.order) {
		t.Errorf("batches by rank in the order they started: %v, want ranks in order", r.order)
	}
	if r.most != jobs {
		t.Errorf("at most %d batches at once, want %d", r.most, jobs)
	}
	if !r.pruned {
		t.Error("the trash's empty folders were not pruned")
	}
}

// TestRestoreTrashStopsBetweenRanks: cancelled while restoring links, the
// restore finishes no later rank (no tag comes back to a missing
// manifest), reports ctx's error, and leaves the trash as it is.
func TestRestoreTrashStopsBetweenRanks(t *testing.T) {
	r := newRanked(10, 600, 5, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	restored := map[int]int{}
	err := RestoreTrash(ctx, r, "run", 3, func(u string, err error) {
		rank, ok := r.rankOf[u]
		if !ok || err != nil {
			return
		}
		restored[rank]++
		if rank == 1 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if restored[0] != 10 || restored[1] == 0 || restored[2] != 0 || restored[3] != 0 {
		t.Errorf("restored by rank %v: want all 10 blobs, some links, no history, no tag", restored)
	}
	if r.pruned {
		t.Error("pruned after a cancel")
	}
}
