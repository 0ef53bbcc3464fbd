// Package walker lists a registry's storage concurrently into an Inventory:
// repositories, tags with their push times, manifest revisions, layer links,
// blobs with size and age, uploads, and the parsed references of every
// manifest the graph may need.
package walker
