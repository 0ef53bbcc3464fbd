package main

import (
	"errors"

	"github.com/spf13/cobra"
)

var errShardTODO = errors.New("sharded runs are not implemented yet")

func runShardMark(cmd *cobra.Command, args []string, sf *shardFlags, pf *planFlags, rf *runFlags, e env) error {
	return errShardTODO
}

func runShardSweep(cmd *cobra.Command, args []string, sf *shardFlags, rf *runFlags, e env) error {
	return errShardTODO
}

func runShardReport(cmd *cobra.Command, args []string, sf *shardFlags, rf *runFlags, e env) error {
	return errShardTODO
}
