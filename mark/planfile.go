package mark

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// PlanFileVersion is the format of plan files this build reads and writes.
const PlanFileVersion = 1

// PlanFile is a plan written to disk for review and a later apply: where
// and when it was made, with which options and policy, and what it
// deletes. On disk it is zstd-compressed JSON.
type PlanFile struct {
	Version   int       `json:"version"`
	Location  string    `json:"location"`
	CreatedAt time.Time `json:"created_at"`
	// PolicyFile and PolicyText are the policy applied, if any; apply
	// parses the text again to recheck.
	PolicyFile string   `json:"policy_file,omitempty"`
	PolicyText string   `json:"policy_text,omitempty"`
	Errors     []string `json:"errors,omitempty"`
	Plan       *Plan    `json:"plan"`
}

// WritePlanFile writes f to w, compressed.
func WritePlanFile(w io.Writer, f *PlanFile) error {
	f.Version = PlanFileVersion
	f.Errors = nil
	if f.Plan.Err != nil {
		f.Errors = strings.Split(f.Plan.Err.Error(), "\n")
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return err
	}
	if err := json.NewEncoder(zw).Encode(f); err != nil {
		zw.Close()
		return fmt.Errorf("write plan: %w", err)
	}
	return zw.Close()
}

// ReadPlanFile reads a plan file, parsing its policy again.
func ReadPlanFile(r io.Reader) (*PlanFile, error) {
	zr, err := zstd.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer zr.Close()
	var f PlanFile
	dec := json.NewDecoder(zr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("read plan: not a regsweep plan file: %w", err)
	}
	if f.Version != PlanFileVersion {
		return nil, fmt.Errorf("read plan: format version %d, this regsweep reads %d", f.Version, PlanFileVersion)
	}
	if f.Plan == nil {
		return nil, errors.New("read plan: no plan in the file")
	}
	if f.PolicyText != "" {
		p, err := ParsePolicy(f.PolicyFile, []byte(f.PolicyText), true)
		if err != nil {
			return nil, fmt.Errorf("read plan: %w", err)
		}
		f.Plan.Options.Policy = p
	}
	if len(f.Errors) > 0 {
		f.Plan.Err = errors.New(strings.Join(f.Errors, "\n"))
	}
	return &f, nil
}
