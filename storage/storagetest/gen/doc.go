// Package gen builds synthetic CNCF Distribution registries, writes them byte
// for byte in the filesystem driver's layout, and knows what a correct garbage
// collection must leave behind.
//
// The flow is: Build (a seeded, in-memory model of pushes, tags, referrers,
// orphans and uploads) → Registry.Write (a bounded pool of workers writing
// files under <root>/docker/registry/v2) → Registry.Expect (the surviving
// blobs, revisions and layer links per GC mode) → Scan and Compare (what is
// on disk against an Expectation).
package gen
