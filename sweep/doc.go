// Package sweep deletes what a mark.Plan selected, in an order safe to
// interrupt: tags, then manifest revision links with their tag history
// entries, then layer links, then blobs.
package sweep
