package decode

import (
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/shared/profile"
)

// TestRegistryMatchesProfile: every decoder name the profile schema accepts
// is registered, and nothing else; the default classes agree.
func TestRegistryMatchesProfile(t *testing.T) {
	got := strings.Join(NewRegistry().Names(), ",")
	want := append([]string(nil), profile.Decoders...)
	if got != strings.Join(sortedCopy(want), ",") {
		t.Fatalf("registered %s, profile knows %v", got, profile.Decoders)
	}
	if strings.Join(DefaultVideoClasses, ",") != strings.Join(profile.DefaultVideoClasses, ",") ||
		DefaultVideoBucket != profile.DefaultVideoBucket || DefaultStreamPrefix != profile.DefaultStreamPrefix {
		t.Fatal("decode and profile defaults disagree")
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestRegistryOptions(t *testing.T) {
	r := NewRegistry()
	d, err := r.NewWith(NameVideo, Options{StreamPrefix: "cams/{camera}", Video: VideoOptions{Bucket: time.Minute, Classes: []string{"cat"}}})
	if err != nil {
		t.Fatal(err)
	}
	v := d.(*Video)
	if v.opts.Bucket != time.Minute || len(v.opts.Classes) != 1 || v.prefix.tmpl != "cams/{camera}" {
		t.Fatalf("options not passed: %+v", v.opts)
	}
	if _, err := r.NewWith(NameSenML, Options{StreamPrefix: "{camera}"}); err == nil {
		t.Fatal("senml accepted {camera}")
	}
	if _, err := r.NewWith(NameVideo, Options{Video: VideoOptions{Classes: []string{"Bad"}}}); err == nil {
		t.Fatal("bad class accepted")
	}
	// DecodeAt passes the receive time to a TimedDecoder only.
	s, _ := r.New(NameSenML)
	rs, err := DecodeAt(s, "t", []byte(`[{"n":"a","v":1}]`), senmlNow)
	if err != nil || len(rs) != 1 || !rs[0].TS.Equal(senmlNow) {
		t.Fatalf("DecodeAt senml: %v %v", rs, err)
	}
	j, _ := r.New(NameJSON)
	rs, err = DecodeAt(j, "t", []byte(`{"ts":0,"value":1}`), senmlNow)
	if err != nil || len(rs) != 1 || rs[0].TS.Unix() != 0 {
		t.Fatalf("DecodeAt json: %v %v", rs, err)
	}
}
