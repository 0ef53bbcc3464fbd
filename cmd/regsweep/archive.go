package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/sweep"
)

// archive writes everything plan deletes into --archive before the sweep.
func (s *session) archive(plan *mark.Plan) error {
	name := s.flags.archive
	if name == "" {
		return nil
	}
	entries := sweep.Entries(plan)
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	place, err := s.loc.Place()
	if err != nil {
		return err
	}
	return s.timed("archive", func(c storage.Counter) error {
		var files int
		var bytes int64
		// Written whole, then renamed into place: a failed write (a full
		// disk) leaves an earlier archive of that name as it was.
		err := writeFileAtomic(name, 0o600, func(w io.Writer) (err error) {
			files, bytes, err = storage.WriteArchive(s.ctx, s.store, place, keys, s.startedAt, w)
			return err
		})
		if err != nil {
			// Nothing is deleted without its archive.
			return fmt.Errorf("archive %s: %w; nothing deleted", name, err)
		}
		c.Add(int64(files))
		s.log.Info("archived", "file", name, "objects", files, "bytes", bytes)
		fmt.Fprintf(s.stdout, "archived %s (%s) to %s; regsweep restore %s puts them back\n", report.Count(files, "object"), report.Bytes(bytes), name, name)
		return nil
	})
}

func newRestoreCommand(e env) *cobra.Command {
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "restore ARCHIVE [LOCATION | --config config.yml]",
		Short: "Put back what a gc or apply with --archive deleted, into the same or another location",
		Long: `restore puts back the files of an undo archive (gc or apply --archive), into
the location the archive records or into LOCATION (or --config) when given.

The whole archive is checked before the first write, and refused whole if one
entry is bad: every entry must be a plain key of the registry layout listed in
the archive's index, blob data must hash to its digest, links must hold the
digest their folder names, and a file the storage already holds with other
content is never replaced. Files and folders restored on a filesystem take the
owner and mode of the folder they are written into.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name := args[0]
			f, err := openInput(name)
			if err != nil {
				return usageError{err}
			}
			idx, err := storage.ReadArchiveIndex(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			rec, recErr := idx.Recorded()
			if recErr != nil {
				recErr = fmt.Errorf("%s: %w", name, recErr)
			}
			loc, _, err := rf.loc.resolveRecorded(args[1:], rec, recErr)
			if err != nil {
				return err
			}
			if err := rf.check(); err != nil {
				return err
			}
			s, err := openSessionForRestore(cmd, loc, &rf, e)
			if err != nil {
				return err
			}
			defer s.Close()
			open := func() (io.ReadCloser, error) { return os.Open(name) }
			var check *storage.RestoreCheck
			if err := s.timed("check", func(c storage.Counter) error {
				f, err := open()
				if err != nil {
					return err
				}
				defer f.Close()
				check, err = storage.CheckRestore(ctx, s.store, f, c)
				return err
			}); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			var files int
			if err := s.timed("restore", func(c storage.Counter) (err error) {
				files, err = check.Write(ctx, s.store, open, c)
				return err
			}); err != nil {
				return fmt.Errorf("%s: %w (%s restored before)", name, err, report.Count(files, "object"))
			}
			fmt.Fprintf(e.stdout, "restored %s from %s into %s\n", report.Count(files, "object"), name, s.store)
			if check.Present > 0 {
				fmt.Fprintf(e.stdout, "(there already, with the same content: %s)\n", report.Count(check.Present, "object"))
			}
			if gone := len(idx.Keys) - check.Files; gone > 0 {
				fmt.Fprintf(e.stdout, "(already gone when it was written: %s it lists)\n", report.Count(gone, "key"))
			}
			return nil
		},
	}
	// Restore writes what the archive holds, one object at a time, and
	// reports on stdout: no --jobs, --report, -v or --archive.
	rf.register(cmd.Flags(), withLock)
	return cmd
}
