package storage

import (
	"fmt"
	"regexp"

	"github.com/distribution/reference"
)

var tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ValidRepoName checks a repository name against the reference grammar the
// registry enforces. Repositories with other names are foreign: reported,
// never deleted.
func ValidRepoName(name string) error {
	if len(name) > reference.RepositoryNameTotalLengthMax {
		return fmt.Errorf("repository name %.40q...: longer than %d", name, reference.RepositoryNameTotalLengthMax)
	}
	if _, err := reference.WithName(name); err != nil {
		return fmt.Errorf("repository name %q: outside the reference grammar", name)
	}
	return nil
}

// ValidTag checks a tag name against the registry's tag grammar.
func ValidTag(tag string) error {
	if !tagPattern.MatchString(tag) {
		return fmt.Errorf("tag %q: outside the tag grammar", tag)
	}
	return nil
}
