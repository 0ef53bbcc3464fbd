// Package mark decides what a garbage collection deletes: it applies the tag
// decisions, marks every manifest and blob reachable from what is kept, and
// returns a Plan for package sweep. It does no I/O and never reads a clock:
// the run's start time comes in through Options.
package mark
