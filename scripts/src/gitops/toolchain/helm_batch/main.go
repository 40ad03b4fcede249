// Command helm-batch runs many helm command lines in one process: each is executed by helm's own command tree
// (helm.sh/helm/v4/pkg/cmd, the code the helm binary's main runs), one after the other, in its own working directory,
// with its stdout, stderr and exit status captured as the helm binary would give them.
//
// Why: a `helm template` or `helm lint` of a small chart costs a few milliseconds; starting the helm binary costs
// about 50 ms of CPU. Rendering a hundred charts through one process pays that once. The helm binary stays the
// reference: the tests compare this program's output with it, byte for byte.
//
// Protocol: one JSON request a line on stdin, {"dir": "<working directory>", "args": ["template", ".", ...]};
// one JSON reply a line on stdout, in the same order, {"stdout": <base64>, "stderr": <base64>, "exit": <status>}.
// A request that panics gets {"crashed": "<panic>"} (the caller runs it with the helm binary instead); one that
// makes helm exit the process (log.Fatal) ends the batch, so the caller sees fewer replies than requests.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	// As in helm's main: initialize client auth plugins.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	helmcmd "helm.sh/helm/v4/pkg/cmd"
	"helm.sh/helm/v4/pkg/kube"
)

// Set at build time (-ldflags -X main.helmVersion=...) to the pinned helm's version.
var helmVersion = "unknown"

type request struct {
	Dir  string   `json:"dir"`
	Args []string `json:"args"`
}

type reply struct {
	Stdout  []byte `json:"stdout"`
	Stderr  []byte `json:"stderr"`
	Exit    int    `json:"exit"`
	Crashed string `json:"crashed,omitempty"`
}

func main() {
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Printf("helm-batch, helm %s\n", helmVersion)
		return
	}
	if err := serve(os.Stdin); err != nil {
		fmt.Fprintf(os.Stderr, "helm-batch: %v\n", err)
		os.Exit(1)
	}
}

func serve(in io.Reader) error {
	// As in helm's main.
	kube.ManagedFieldsManager = "helm"

	// Replies go to the original stdout; fd 1 and 2 are pointed at capture files while each command runs.
	repliesFd, err := unix.Dup(1)
	if err != nil {
		return err
	}
	replies := bufio.NewWriter(os.NewFile(uintptr(repliesFd), "replies"))
	tmp, err := os.MkdirTemp("", "helm-batch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	stdout, err := os.Create(tmp + "/stdout")
	if err != nil {
		return err
	}
	stderr, err := os.Create(tmp + "/stderr")
	if err != nil {
		return err
	}
	savedOut, err := unix.Dup(1)
	if err != nil {
		return err
	}
	savedErr, err := unix.Dup(2)
	if err != nil {
		return err
	}

	globals, err := recordFlags()
	if err != nil {
		return err
	}
	lines := bufio.NewScanner(in)
	lines.Buffer(make([]byte, 1<<20), 64<<20)
	for lines.Scan() {
		var req request
		if err := json.Unmarshal(lines.Bytes(), &req); err != nil {
			return fmt.Errorf("bad request %q: %w", lines.Text(), err)
		}
		for _, f := range []*os.File{stdout, stderr} {
			if err := f.Truncate(0); err != nil {
				return err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
		}
		if err := unix.Dup2(int(stdout.Fd()), 1); err != nil {
			return err
		}
		if err := unix.Dup2(int(stderr.Fd()), 2); err != nil {
			return err
		}
		exit, crashed := run(req, globals)
		if err := unix.Dup2(savedOut, 1); err != nil {
			return err
		}
		if err := unix.Dup2(savedErr, 2); err != nil {
			return err
		}
		out := reply{Exit: exit, Crashed: crashed}
		if out.Stdout, err = os.ReadFile(stdout.Name()); err != nil {
			return err
		}
		if out.Stderr, err = os.ReadFile(stderr.Name()); err != nil {
			return err
		}
		encoded, err := json.Marshal(out)
		if err != nil {
			return err
		}
		replies.Write(append(encoded, '\n'))
		if err := replies.Flush(); err != nil {
			return err
		}
	}
	return lines.Err()
}

// run executes one command line as helm's main does, and returns its exit status.
func run(req request, globals *globalFlags) (exit int, crashed string) {
	defer func() {
		if r := recover(); r != nil {
			exit, crashed = 2, fmt.Sprintf("%v\n%s", r, debug.Stack())
		}
	}()
	// Each command starts from the state a fresh helm process has (see globalFlags).
	defer globals.restore()
	if err := os.Chdir(req.Dir); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1, ""
	}
	os.Args = append([]string{"helm"}, req.Args...)

	// From here on, helm's main (cmd/helm/helm.go) line for line.
	cmd, err := helmcmd.NewRootCmd(os.Stdout, os.Args[1:], helmcmd.SetupLogging)
	if err != nil {
		slog.Warn("command failed", slog.Any("error", err))
		return 1, ""
	}
	if err := cmd.Execute(); err != nil {
		if cerr, ok := errors.AsType[helmcmd.CommandError](err); ok {
			return cerr.ExitCode, ""
		}
		return 1, ""
	}
	return 0, ""
}

// helm's global flags (--namespace, --kube-context, --debug…) are bound to one package-level settings value, and
// every new command tree takes that value's current contents as its defaults: a flag given to one command would
// silently become the next one's default. So after each command every global flag is put back to what a fresh
// process starts with, through the flags of a first command tree (bound to the same settings, and to klog's).
type globalFlags struct {
	flags    *pflag.FlagSet
	pristine map[string]flagState
}

type flagState struct {
	value string
	slice []string
}

func recordFlags() (*globalFlags, error) {
	probe, err := helmcmd.NewRootCmd(io.Discard, nil, func(bool) {})
	if err != nil {
		return nil, err
	}
	g := &globalFlags{flags: probe.PersistentFlags(), pristine: map[string]flagState{}}
	g.flags.VisitAll(func(f *pflag.Flag) {
		s := flagState{value: f.Value.String()}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			s.slice = append([]string(nil), sv.GetSlice()...)
		}
		g.pristine[f.Name] = s
	})
	return g, nil
}

func (g *globalFlags) restore() {
	g.flags.VisitAll(func(f *pflag.Flag) {
		want := g.pristine[f.Name]
		if f.Value.String() == want.value {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			if err := sv.Replace(want.slice); err != nil {
				panic(fmt.Sprintf("cannot reset helm flag --%s: %v", f.Name, err))
			}
		} else if err := f.Value.Set(want.value); err != nil {
			panic(fmt.Sprintf("cannot reset helm flag --%s: %v", f.Name, err))
		}
	})
}
