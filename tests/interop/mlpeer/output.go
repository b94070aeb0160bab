package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"sync"
)

// kv is one member of an obj.
type kv struct {
	k string
	v any
}

// obj is a JSON object that keeps its keys in the order given, so the lines
// read naturally in test transcripts ("event"/"reply" first).
type obj []kv

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.k)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// emitter writes JSON lines to stdout. Delegates call it from memberlist's
// goroutines, so every line is written and flushed under one mutex. Events
// produced before the "ready" line (memberlist announces the local node while
// it starts) are held back and written right after it, so "ready" is always
// the first line.
type emitter struct {
	mu    sync.Mutex
	w     *bufio.Writer
	ready bool
	held  [][]byte
}

func newEmitter(w io.Writer) *emitter {
	return &emitter{w: bufio.NewWriter(w)}
}

func encodeLine(o obj) []byte {
	b, err := json.Marshal(o)
	if err != nil {
		// Only plain strings, numbers, bools and slices of obj are encoded.
		panic(err)
	}
	return b
}

func (e *emitter) writeLocked(line []byte) {
	e.w.Write(line)
	e.w.WriteByte('\n')
	e.w.Flush()
}

// event writes an asynchronous event line (held back until ready).
func (e *emitter) event(o obj) {
	line := encodeLine(o)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.ready {
		e.held = append(e.held, line)
		return
	}
	e.writeLocked(line)
}

// line writes a line immediately (replies, bench figures, fatal errors).
func (e *emitter) line(o obj) {
	line := encodeLine(o)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writeLocked(line)
}

// markReady writes the ready line, then everything held back.
func (e *emitter) markReady(o obj) {
	line := encodeLine(o)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writeLocked(line)
	for _, h := range e.held {
		e.writeLocked(h)
	}
	e.held = nil
	e.ready = true
}
