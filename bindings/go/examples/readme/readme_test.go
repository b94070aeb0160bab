package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The README shows this program verbatim: its Go block is main.go, byte for byte.
func TestTheReadmeShowsThisProgram(t *testing.T) {
	readme, err := os.ReadFile("../../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	program, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```go\n(// Alertmanager's own silences.*?)```\n").FindSubmatch(readme)
	if block == nil || string(block[1]) != string(program) {
		t.Fatal("README.md's Go example differs from bindings/go/examples/readme/main.go: copy main.go into it")
	}
}

// Two runs of the program, the second joining the first, each print the other's silence:
// Alertmanager's silences replicate on hearsay's default layout under Alertmanager's key.
func TestTwoRunsShareTheirSilences(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "readme")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	first := run(t, bin, "-cluster.listen-address", "127.0.0.1:0")
	addr := first.expect(t, regexp.MustCompile(`^node (\S+) at (\S+)$`))
	second := run(t, bin, "-cluster.listen-address", "127.0.0.1:0", "-cluster.peer", addr[2])
	other := second.expect(t, regexp.MustCompile(`^node (\S+) at (\S+)$`))
	first.expect(t, regexp.MustCompile(`^silence \S+ by `+regexp.QuoteMeta(other[1])+`$`))
	second.expect(t, regexp.MustCompile(`^silence \S+ by `+regexp.QuoteMeta(addr[1])+`$`))
}

type process struct{ lines chan string }

func run(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{lines: make(chan string, 64)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			p.lines <- strings.TrimSpace(s.Text())
		}
		close(p.lines)
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	return p
}

// expect waits up to 20 s for a line matching re and returns its submatches.
func (p *process) expect(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("the program ended before printing %v", re)
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no line matching %v", re)
		}
	}
}
