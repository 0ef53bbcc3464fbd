package mark

import "github.com/regsweep/regsweep/walker"

// Ages reads ages a walk left unknown into the inventory being marked: the
// size and age of the blobs' data (walker.StatBlobs) and the ages of the
// layer links of the named repositories (walker.AgeLayerLinks). It is
// called between two computations, never during one.
type Ages func(blobs []walker.ID, repos []string) error

// ComputeAged is Compute for an inventory that lacks ages it did not need
// to walk: a filesystem walk lists blobs by name and reads the age of a
// layer link only where it must. Compute keeps what it cannot decide for
// want of an age and names it (Plan.BlobAgesWanted, Plan.LinkAgesWanted);
// ages reads those, for these candidates only, and the plan is computed
// again, so that mark decides with them. A read that fails leaves an age
// that keeps its object, so the rounds end.
func ComputeAged(inv *walker.Inventory, opts Options, ages Ages) (*Plan, error) {
	for round := 0; ; round++ {
		plan := Compute(inv, opts)
		blobs, repos := plan.BlobAgesWanted(), plan.LinkAgesWanted()
		// Blob ages can change which layer links a plan deletes, and so
		// which repositories it empties: a third round settles that.
		if len(blobs)+len(repos) == 0 || round == 2 {
			return plan, nil
		}
		if err := ages(blobs, repos); err != nil {
			return nil, err
		}
	}
}
