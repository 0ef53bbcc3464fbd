// Package report formats what a run did: a human summary and a JSON
// document. It only formats; the numbers come from mark and sweep.
package report
