package main

import (
	"fmt"
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
	return s.timed("archive", func(c storage.Counter) error {
		f, err := os.Create(name)
		if err != nil {
			return fmt.Errorf("--archive: %w", err)
		}
		files, bytes, err := storage.WriteArchive(s.ctx, s.store, s.store.String(), keys, s.startedAt, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
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
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f, err := os.Open(args[0])
			if err != nil {
				return usageError{err}
			}
			idx, err := storage.ReadArchiveIndex(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			locArgs := args[1:]
			if len(locArgs) == 0 && rf.loc.config == "" {
				locArgs = []string{idx.Location}
			}
			loc, err := rf.loc.resolve(locArgs)
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
			f, err = os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			var files int
			err = s.timed("restore", func(c storage.Counter) (err error) {
				files, err = storage.Restore(ctx, s.store, f, c)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "restored %s from %s into %s\n", report.Count(files, "object"), args[0], s.store)
			if gone := len(idx.Keys) - files; gone > 0 {
				fmt.Fprintf(e.stdout, "(already gone when it was written: %s it lists)\n", report.Count(gone, "key"))
			}
			return nil
		},
	}
	rf.register(cmd.Flags(), true)
	return cmd
}
