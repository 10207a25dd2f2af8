// Package apidoc holds the client API documents: openapi.yaml (OpenAPI 3.1,
// every REST route of api-rest) and asyncapi.yaml (AsyncAPI 3, every
// Socket.IO event of api-ws, both ways). They are the machine-readable
// contract next to docs/api.md; api-rest serves the OpenAPI one as JSON, and
// the test suites of both services validate what the servers answer against
// them, so a document cannot drift from the code unnoticed.
package apidoc

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/goccy/go-yaml"
)

// OpenAPI is openapi.yaml as written.
//
//go:embed openapi.yaml
var OpenAPI []byte

// AsyncAPI is asyncapi.yaml as written.
//
//go:embed asyncapi.yaml
var AsyncAPI []byte

// JSON is a document converted to JSON once, with its strong ETag.
type JSON struct {
	Body []byte
	ETag string
}

var openAPIJSON = sync.OnceValues(func() (JSON, error) { return toJSON(OpenAPI) })

// OpenAPIJSON returns the OpenAPI document as JSON (what GET
// /api/v1/openapi.json serves).
func OpenAPIJSON() (JSON, error) { return openAPIJSON() }

func toJSON(doc []byte) (JSON, error) {
	body, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return JSON{}, fmt.Errorf("apidoc: yaml to json: %w", err)
	}
	sum := sha256.Sum256(body)
	return JSON{Body: body, ETag: `"` + hex.EncodeToString(sum[:16]) + `"`}, nil
}

// asyncDoc is the part of asyncapi.yaml that Events and AsyncEnum read.
type asyncDoc struct {
	Operations map[string]struct {
		Action   string `yaml:"action"`
		Messages []ref  `yaml:"messages"`
		Reply    *struct {
			Messages []ref `yaml:"messages"`
		} `yaml:"reply"`
	} `yaml:"operations"`
	Channels map[string]struct {
		Messages map[string]ref `yaml:"messages"`
	} `yaml:"channels"`
	Components struct {
		Messages map[string]struct {
			Name string `yaml:"name"`
		} `yaml:"messages"`
		Schemas map[string]struct {
			Enum []string `yaml:"enum"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

type ref struct {
	Ref string `yaml:"$ref"`
}

var parsedAsync = sync.OnceValues(func() (*asyncDoc, error) {
	var d asyncDoc
	if err := yaml.Unmarshal(AsyncAPI, &d); err != nil {
		return nil, fmt.Errorf("apidoc: asyncapi.yaml: %w", err)
	}
	return &d, nil
})

// Events lists the Socket.IO event names of asyncapi.yaml: those the server
// sends (action send) and those it receives (action receive), each sorted
// and without repeats.
func Events() (sent, received []string, err error) {
	d, err := parsedAsync()
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]map[string]bool{"send": {}, "receive": {}}
	for opName, op := range d.Operations {
		if seen[op.Action] == nil {
			return nil, nil, fmt.Errorf("apidoc: operation %s: action %q", opName, op.Action)
		}
		for _, m := range op.Messages {
			name, err := d.messageName(m.Ref)
			if err != nil {
				return nil, nil, fmt.Errorf("apidoc: operation %s: %w", opName, err)
			}
			seen[op.Action][name] = true
		}
	}
	return sortedKeys(seen["send"]), sortedKeys(seen["receive"]), nil
}

// messageName follows a #/channels/<c>/messages/<m> reference to the
// component message it names and returns that message's name.
func (d *asyncDoc) messageName(r string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(r, "#/"), "/")
	if len(parts) != 4 || parts[0] != "channels" || parts[2] != "messages" {
		return "", fmt.Errorf("message reference %q is not #/channels/<c>/messages/<m>", r)
	}
	target := d.Channels[parts[1]].Messages[parts[3]].Ref
	key, ok := strings.CutPrefix(target, "#/components/messages/")
	if !ok {
		return "", fmt.Errorf("channel message %q: reference %q", r, target)
	}
	m, ok := d.Components.Messages[key]
	if !ok || m.Name == "" {
		return "", fmt.Errorf("component message %q missing or without a name", key)
	}
	return m.Name, nil
}

// AsyncEnum returns the enum of the schema components/schemas/<name> of
// asyncapi.yaml (e.g. the ack error codes).
func AsyncEnum(name string) ([]string, error) {
	d, err := parsedAsync()
	if err != nil {
		return nil, err
	}
	s, ok := d.Components.Schemas[name]
	if !ok || len(s.Enum) == 0 {
		return nil, fmt.Errorf("apidoc: asyncapi.yaml has no enum schema %q", name)
	}
	return slices.Sorted(slices.Values(s.Enum)), nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
