package report

import (
	"strconv"
	"strings"
)

// Count renders n and noun, the noun in the plural unless n is 1: "1 path",
// "2 paths", "1 empty repository", "3 history entries". noun is singular;
// its last word takes the plural (English rules for the nouns of reports:
// -y after a consonant becomes -ies, -s, -x, -ch, -sh take -es).
func Count(n int, noun string) string {
	return strconv.Itoa(n) + " " + Plural(n, noun)
}

// Plural is noun in the plural unless n is 1, as Count renders it.
func Plural(n int, noun string) string {
	if n == 1 || noun == "" {
		return noun
	}
	switch {
	case strings.HasSuffix(noun, "y") && len(noun) > 1 && !strings.ContainsRune("aeiou", rune(noun[len(noun)-2])):
		return noun[:len(noun)-1] + "ies"
	case strings.HasSuffix(noun, "s"), strings.HasSuffix(noun, "x"), strings.HasSuffix(noun, "ch"), strings.HasSuffix(noun, "sh"):
		return noun + "es"
	}
	return noun + "s"
}
