package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Desired is an agent's desired state: the document the cloud writes to
// the KV bucket names.BucketDesired under the agent's id, and that the agent
// watches. The agent applies what differs from what it runs, and reports
// the outcome in its State (Models on success; LastError, keeping the old
// model, on failure).
//
// Example:
//
//	{"revision":7,"models":{"*":"vib@3"},"config":"generic-sensor.2","config_revision":2,
//	 "rollout":"ro-20261123-063000-1a2b","updated":"2026-11-23T06:30:00Z"}
//
// Fields are only added, never renamed.
type Desired struct {
	// Revision increases by one with every change the cloud makes to the
	// document.
	Revision int64 `json:"revision"`
	// Models maps a stream or stream pattern (as the agent's profile names
	// it; "*" means every stream) to the model it must run, "name@version"
	// (the signed package names.ModelObject(name, version) in
	// names.ObjectModels). The agent reports the model it runs under the
	// same key in State.Models. A stream runs the model of the most
	// specific key: its own name, else its rule's pattern, else "*".
	Models map[string]string `json:"models,omitempty"`
	// Config is the firmware profile the agent must run: the key
	// names.ConfigKey(name, revision) of its YAML in the KV bucket
	// names.BucketConfigs; empty means the profile the agent was
	// installed with. The agent reports the profile's name and revision in
	// State.Profile and State.Revision.
	Config string `json:"config,omitempty"`
	// ConfigRevision is the revision of Config (0 when Config is empty).
	ConfigRevision int64 `json:"config_revision,omitempty"`
	// Rollout is the id of the rollout that wrote the document last, if any.
	Rollout string `json:"rollout,omitempty"`
	// Updated is when the document was written.
	Updated time.Time `json:"updated"`
}

// ParseModelID splits a model id "name@version" into its name and version
// (an integer ≥ 1).
func ParseModelID(id string) (name string, version int, err error) {
	i := strings.LastIndexByte(id, '@')
	if i <= 0 || i == len(id)-1 {
		return "", 0, fmt.Errorf("wire: model %q: want name@version, e.g. vib@2", id)
	}
	v, err := strconv.Atoi(id[i+1:])
	if err != nil || v < 1 {
		return "", 0, fmt.Errorf("wire: model %q: version must be an integer ≥ 1", id)
	}
	return id[:i], v, nil
}

// ModelID is the model id "name@version".
func ModelID(name string, version int) string { return name + "@" + strconv.Itoa(version) }
