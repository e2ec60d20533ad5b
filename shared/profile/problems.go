package profile

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a profile.
type Problem struct {
	// Path is the YAML path of the offending value, e.g. "streams[0].window";
	// empty for the document as a whole.
	Path string
	// Line is the line of the value in the YAML source, or 0 if unknown.
	Line int
	// Msg says what is wrong.
	Msg string
}

// String formats the problem as "path: msg (line N)".
func (p Problem) String() string {
	s := p.Msg
	if p.Path != "" {
		s = p.Path + ": " + s
	}
	if p.Line > 0 {
		s += fmt.Sprintf(" (line %d)", p.Line)
	}
	return s
}

// Problems is every problem found in a profile. It is an error.
type Problems []Problem

// Error lists the problems, one per line.
func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// AsProblems returns the problems carried by err, or nil.
func AsProblems(err error) Problems {
	var ps Problems
	if errors.As(err, &ps) {
		return ps
	}
	return nil
}

var (
	profileType  = reflect.TypeOf(Profile{})
	cooldownType = reflect.TypeOf(Cooldown{})
	durationType = reflect.TypeOf(time.Duration(0))
)

// walk records the line of every key under n, which decodes into a value of
// type t, and reports keys that t does not have.
func walk(n *yaml.Node, path string, t reflect.Type, lines map[string]int, probs *Problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch {
	case t == cooldownType || t == durationType:
		return
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			fields[tag] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				*probs = append(*probs, Problem{Path: p, Line: k.Line, Msg: "unknown key" + suggest(k.Value, fields)})
				continue
			}
			walk(v, p, ft, lines, probs)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = v.Line
			walk(v, p, t.Elem(), lines, probs)
		}
	}
}

// suggest returns ` (known keys: ...)` for an unknown key.
func suggest(_ string, fields map[string]reflect.Type) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return " (known keys: " + strings.Join(keys, ", ") + ")"
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// decodeProblems turns yaml decoding errors into problems, finding each
// one's path from its line.
func decodeProblems(err error) Problems {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var ps Problems
	for _, m := range msgs {
		p := Problem{Msg: m}
		if sm := lineRE.FindStringSubmatch(m); sm != nil {
			p.Line, _ = strconv.Atoi(sm[1])
			p.Msg = sm[2]
		}
		ps = append(ps, p)
	}
	return ps
}

// pathsByLine fills in the path of problems that only know their line.
func (p Profile) pathsByLine(ps Problems) {
	for i := range ps {
		if ps[i].Path != "" || ps[i].Line == 0 {
			continue
		}
		best := ""
		for path, l := range p.lines {
			if l == ps[i].Line && len(path) > len(best) {
				best = path
			}
		}
		ps[i].Path = best
	}
}
