// yaml-check reads YAML streams the way Go tools of the Kubernetes world do,
// so kiln's tests can check that what kiln writes means the same to them:
//
//	kyaml:   kustomize's reader (kio.ByteReader, go-yaml v3 underneath)
//	yamlv3:  go-yaml v3's multi-document decoder (Flux's kustomize-controller path)
//	kubectl: kubectl's split on "---" lines then sigs.k8s.io/yaml (go-yaml v2, YAML 1.1)
//
// Input on stdin: a JSON array of YAML streams. Output on stdout: a JSON array,
// one entry per stream, each reader giving its documents as JSON or its error.
// Every string of a document (keys too) is written as its code points in hex
// ("a\u2028" as "61.2028"): Node 24's JSON.parse has been seen to misread
// escaped strings ("\u2028" read as "\\" once a "\\" key was seen), and the
// test must see what the reader read, not what JSON.parse made of it. Many streams per call keep the property test fast.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/kyaml/kio"
	sigsyaml "sigs.k8s.io/yaml"
)

// tagged re-encodes a document with every string as its code points.
func tagged(doc []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(tag(v))
}

func tag(v interface{}) interface{} {
	switch x := v.(type) {
	case string:
		return codePoints(x)
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, e := range x {
			out[i] = tag(e)
		}
		return out
	case map[string]interface{}:
		out := make(map[string]interface{}, len(x))
		for k, e := range x {
			out[codePoints(k)] = tag(e)
		}
		return out
	}
	return v
}

func codePoints(s string) string {
	var b strings.Builder
	b.WriteString("=")
	for i, r := range s {
		if i > 0 {
			b.WriteString(".")
		}
		b.WriteString(strconv.FormatInt(int64(r), 16))
	}
	return b.String()
}

type result struct {
	Docs  []json.RawMessage `json:"docs,omitempty"`
	Error string            `json:"error,omitempty"`
}

func kyaml(text string) result {
	nodes, err := (&kio.ByteReader{Reader: bytes.NewBufferString(text), OmitReaderAnnotations: true}).Read()
	if err != nil {
		return result{Error: err.Error()}
	}
	var r result
	for _, n := range nodes {
		j, err := n.MarshalJSON()
		if err != nil {
			return result{Error: err.Error()}
		}
		t, err := tagged(j)
		if err != nil {
			return result{Error: err.Error()}
		}
		r.Docs = append(r.Docs, t)
	}
	return r
}

func v3(text string) result {
	dec := yamlv3.NewDecoder(bytes.NewBufferString(text))
	var r result
	for {
		var v interface{}
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			return result{Error: err.Error()}
		}
		if v == nil {
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			return result{Error: err.Error()}
		}
		t, err := tagged(j)
		if err != nil {
			return result{Error: err.Error()}
		}
		r.Docs = append(r.Docs, t)
	}
}

func kubectl(text string) result {
	reader := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewBufferString(text)))
	var r result
	for {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			return result{Error: err.Error()}
		}
		j, err := sigsyaml.YAMLToJSON(chunk)
		if err != nil {
			return result{Error: err.Error()}
		}
		if string(j) == "null" {
			continue
		}
		t, err := tagged(j)
		if err != nil {
			return result{Error: err.Error()}
		}
		r.Docs = append(r.Docs, t)
	}
}

func main() {
	var texts []string
	if err := json.NewDecoder(os.Stdin).Decode(&texts); err != nil {
		fmt.Fprintln(os.Stderr, "yaml-check: stdin is not a JSON array of strings:", err)
		os.Exit(2)
	}
	out := make([]map[string]result, len(texts))
	for i, t := range texts {
		out[i] = map[string]result{"kyaml": kyaml(t), "yamlv3": v3(t), "kubectl": kubectl(t)}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "yaml-check:", err)
		os.Exit(1)
	}
}
