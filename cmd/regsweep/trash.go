package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/sweep"
)

// newTrashCommand is the trash a run on a filesystem moves what it deletes
// into: listed, restored or freed.
func newTrashCommand(e env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trash",
		Short: "List, restore or free what gc and apply moved out of a filesystem registry (regsweep-trash/)",
		Long: `On a filesystem, gc and apply move what they delete into
<rootdirectory>/` + storage.TrashDir + `/<run>/ with one rename each, keeping its
path (docker/registry/v2/...), and free it once the registry may leave
read-only mode. A trash kept with --keep-trash, or left by a run that was
killed, stays until the next gc or apply, or regsweep trash purge, frees it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(e.stderr)
			_ = cmd.Usage()
			return usageError{fmt.Errorf("trash: give list, restore or purge")}
		},
	}
	cmd.AddCommand(newTrashListCommand(e), newTrashRestoreCommand(e), newTrashPurgeCommand(e))
	return cmd
}

// openTrash opens the session of a trash command on the location args
// name (taking the lock with lock) and returns its trash, refusing a store
// without one.
func openTrash(cmd *cobra.Command, args []string, rf *runFlags, lock bool, command string, e env) (*session, storage.Trasher, error) {
	loc, err := rf.loc.resolve(args)
	if err != nil {
		return nil, nil, err
	}
	if err := rf.check(); err != nil {
		return nil, nil, err
	}
	s, err := openSession(cmd.Context(), loc, rf, lock, command, time.Now(), e)
	if err != nil {
		return nil, nil, err
	}
	t := storage.CapabilitiesOf(s.store).Trasher
	if s.loc.Kind != storage.KindFilesystem || t == nil {
		s.Close()
		return nil, nil, usageError{fmt.Errorf("%s: only a filesystem registry has a trash (S3 deletes in place)", s.store)}
	}
	return s, t, nil
}

func newTrashListCommand(e env) *cobra.Command {
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "list [LOCATION | --config config.yml]",
		Short: "List the run folders of the trash",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, t, err := openTrash(cmd, args, &rf, false, "trash list", e)
			if err != nil {
				return err
			}
			defer s.Close()
			runs, err := t.Trashes(s.ctx)
			if err != nil {
				return err
			}
			for _, r := range runs {
				fmt.Fprintln(e.stdout, r)
			}
			return nil
		},
	}
	rf.register(cmd.Flags(), 0)
	return cmd
}

func newTrashRestoreCommand(e env) *cobra.Command {
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "restore RUN [LOCATION | --config config.yml]",
		Short: "Rename what run RUN moved into the trash back into the registry",
		Long: `restore renames every file and folder of the trash of run RUN (see
regsweep trash list; a kept trash's run is in the gc report) back to its place
in the registry, what is referenced first (blobs and uploads, links, tag
history, tags; a rank at a time, --jobs renames at once within a rank), so
that a restore stopped midway leaves no tag pointing at a missing manifest.
A name in the trash that is not a key of the registry layout, something
else than the layout has there (a symlink, a folder without its file), and
a place in the registry that is taken again, are left in the trash and
reported. Folders made for a restored file take the owner and
mode of the folder they are made in. It takes the lock, as gc does.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			run := args[0]
			if err := storage.ValidTrashRun(run); err != nil {
				return usageError{err}
			}
			s, t, err := openTrash(cmd, args[1:], &rf, true, "trash restore", e)
			if err != nil {
				return err
			}
			defer s.Close()
			restored, left := 0, 0
			err = s.timed("restore", func(storage.Counter) error {
				return sweep.RestoreTrash(s.ctx, t, run, s.jobs, func(unit string, err error) {
					if err != nil {
						left++
						s.log.Warn("left in the trash", "key", unit, "err", err)
						return
					}
					restored++
				})
			})
			if err != nil {
				return fmt.Errorf("trash restore %s: %w (%s restored before)", run, err, report.Count(restored, "key"))
			}
			fmt.Fprintf(e.stdout, "restored %s from the trash of run %s into %s\n", report.Count(restored, "key"), run, s.store)
			if left > 0 {
				return fmt.Errorf("%w: %s left in %s/%s/%s", errIncomplete, report.Count(left, "key"), s.store, storage.TrashDir, run)
			}
			return nil
		},
	}
	rf.register(cmd.Flags(), withJobs|withLock)
	return cmd
}

func newTrashPurgeCommand(e env) *cobra.Command {
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "purge [LOCATION | --config config.yml]",
		Short: "Free every run folder of the trash",
		Long: `purge frees what gc and apply left in the trash: a trash kept with
--keep-trash (the undo it offered is gone after this), or one a killed run
left. It takes the lock; nothing the registry serves is touched, so the
registry need not be stopped or read-only.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The trash is outside the layout: the registry's mode does
			// not matter, only the lock.
			rf.registryStopped = true
			s, t, err := openTrash(cmd, args, &rf, true, "trash purge", e)
			if err != nil {
				return err
			}
			defer s.Close()
			var freed []string
			err = s.timed("free trash", func(storage.Counter) (err error) {
				freed, err = sweep.FreeTrash(s.ctx, t, "", s.jobs)
				return err
			})
			for _, r := range freed {
				fmt.Fprintf(e.stdout, "freed %s/%s/%s\n", s.store, storage.TrashDir, r)
			}
			return err
		},
	}
	rf.register(cmd.Flags(), withJobs)
	cmd.Flags().BoolVar(&rf.breakLock, "break-lock", false, "remove a lock left by a run that died, then take it")
	return cmd
}
