// Command corral is the Corral server.
//
//	corral [serve] [--config corral.yaml] [--zoo-cfg zoo.cfg] [flags]
//	corral version
//	corral plugins
//	corral config validate|default [--config corral.yaml]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/corral-dev/corral/framework/config"
	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/server"
	_ "github.com/corral-dev/corral/plugins/all"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// The tree is most of the heap and lives long; collecting at 50%
		// growth instead of Go's 100% trades a little CPU for a third
		// less memory with large trees. GOGC in the environment wins.
		debug.SetGCPercent(50)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "version":
		fmt.Fprintln(stdout, "corral", version())
		return 0
	case "plugins":
		for _, id := range plugin.List("") {
			fmt.Fprintln(stdout, id)
		}
		return 0
	case "config":
		return configCmd(args, stdout, stderr)
	case "data":
		return dataCmd(args, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "corral: unknown command %q\n", cmd)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  corral [serve] [--config FILE] [--zoo-cfg FILE] [--data-dir DIR] [--listen ADDR] [--log-level LEVEL]
  corral version
  corral plugins
  corral config default            print the embedded default config
  corral config validate [--config FILE] [--zoo-cfg FILE]
                                   load, check and print the effective config
Environment: CORRAL_<KEY> overrides a config key; __ nests (CORRAL_STORAGE__SYNC=false).
`)
}

func version() string {
	v := server.Version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}

type loadFlags struct {
	config, zooCfg, dataDir, listen, logLevel string
	pprof                                     string
}

func (lf *loadFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&lf.config, "config", "", "YAML config file")
	fs.StringVar(&lf.zooCfg, "zoo-cfg", "", "a ZooKeeper zoo.cfg to start from")
	fs.StringVar(&lf.dataDir, "data-dir", "", "data directory (overrides data_dir)")
	fs.StringVar(&lf.listen, "listen", "", "client address for the native protocol (replaces the protocol list)")
	fs.StringVar(&lf.logLevel, "log-level", "", "debug, info, warn or error")
	fs.StringVar(&lf.pprof, "pprof", "", "serve Go's net/http/pprof on this address (debugging)")
}

func (lf *loadFlags) load(stderr io.Writer) (*config.Config, error) {
	overrides := map[string]any{}
	if lf.zooCfg != "" {
		f, err := os.Open(lf.zooCfg)
		if err != nil {
			return nil, err
		}
		zk, warnings, err := config.ZooCfg(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, w := range warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		for k, v := range zk {
			overrides[k] = v
		}
	}
	if lf.dataDir != "" {
		overrides["data_dir"] = lf.dataDir
	}
	if lf.listen != "" {
		overrides["protocols"] = []any{map[string]any{"type": "native", "listen": lf.listen}}
	}
	if lf.logLevel != "" {
		overrides["log.level"] = lf.logLevel
	}
	return config.Load(config.Source{File: lf.config, Env: os.Environ(), Overrides: overrides})
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("corral serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf loadFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := lf.load(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "corral: config: %v\n", err)
		return 2
	}
	log := newLogger(cfg.Log, stderr)
	slog.SetDefault(log)
	if lf.pprof != "" {
		ln, err := net.Listen("tcp", lf.pprof)
		if err != nil {
			fmt.Fprintf(stderr, "corral: pprof: %v\n", err)
			return 1
		}
		log.Info("pprof listening", "addr", ln.Addr().String())
		go http.Serve(ln, nil)
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "corral: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "corral: %v\n", err)
		return 1
	}
	log.Info("corral started", "version", version(), "node_id", cfg.NodeID, "data_dir", cfg.DataDir)
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "corral: shutdown: %v\n", err)
		return 1
	}
	return 0
}

func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "corral config: want validate or default")
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("corral config "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf loadFlags
	lf.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var cfg *config.Config
	var err error
	switch sub {
	case "default":
		cfg, err = config.Load(config.Source{})
	case "validate":
		cfg, err = lf.load(stderr)
	default:
		fmt.Fprintf(stderr, "corral config: unknown subcommand %q (want validate or default)\n", sub)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "corral: config: %v\n", err)
		return 1
	}
	out, err := yaml.Marshal(config.Effective(cfg))
	if err != nil {
		fmt.Fprintf(stderr, "corral: %v\n", err)
		return 1
	}
	stdout.Write(out)
	if sub == "validate" {
		fmt.Fprintln(stderr, "config is valid")
	}
	return 0
}
