// Package config loads Corral's configuration with koanf: embedded
// defaults, then a YAML file, then CORRAL_* environment variables, then
// flags. Decoding is strict: an unknown key anywhere is an error naming it.
// Each plugin slot names its plugin with `type:` and the rest of the slot is
// decoded over that plugin's own defaults.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/corral-dev/corral/framework/consensus"
	"github.com/corral-dev/corral/framework/plugin"
)

// Config is the whole server configuration after loading.
type Config struct {
	// DataDir holds everything durable (plugins keep their files under it).
	DataDir string `koanf:"data_dir"`
	// NodeID is this server's id in Members.
	NodeID uint64 `koanf:"node_id"`
	// Members lists the ensemble; empty means a single server.
	Members []consensus.Member `koanf:"members"`

	// TickTime is ZooKeeper's tickTime: the unit of session timeouts.
	TickTime time.Duration `koanf:"tick_time"`
	// MinSessionTimeout and MaxSessionTimeout clamp what clients ask for;
	// zero means 2x and 20x TickTime, as in ZooKeeper.
	MinSessionTimeout time.Duration `koanf:"min_session_timeout"`
	MaxSessionTimeout time.Duration `koanf:"max_session_timeout"`
	// MaxClientConns is maxClientCnxns: connections per client IP (0 = no limit).
	MaxClientConns int `koanf:"max_client_conns"`
	// MaxRequestBytes is jute.maxbuffer.
	MaxRequestBytes int `koanf:"max_request_bytes"`
	// FourLetterWords is 4lw.commands.whitelist; "*" enables all.
	FourLetterWords []string `koanf:"four_letter_words"`
	// ContainerCheckInterval is how often empty containers and expired TTL
	// nodes are reaped (ZooKeeper's znode.container.checkIntervalMs).
	ContainerCheckInterval time.Duration `koanf:"container_check_interval"`
	// ExtendedTypes enables TTL nodes (zookeeper.extendedTypesEnabled).
	ExtendedTypes bool `koanf:"extended_types"`
	// SuperDigest is "super:<base64 sha1>" (DigestAuthenticationProvider.superDigest).
	SuperDigest string `koanf:"super_digest"`
	// ReconfigEnabled allows the reconfig opcode.
	ReconfigEnabled bool `koanf:"reconfig_enabled"`
	// LocalSessions creates new sessions on the connected server only, with
	// no consensus round (ZooKeeper's localSessionsEnabled); they cannot
	// move to another server.
	LocalSessions bool `koanf:"local_sessions"`
	// LocalSessionsUpgrading turns a local session into a global one when
	// it creates an ephemeral (localSessionsUpgradingEnabled); without it
	// such a create fails with EPHEMERALONLOCALSESSION.
	LocalSessionsUpgrading bool `koanf:"local_sessions_upgrading"`
	// ReadOnlyMode lets a member cut off from the majority serve reads to
	// clients that accept a read-only server (readonlymode.enabled).
	ReadOnlyMode bool `koanf:"read_only_mode"`
	// SnapshotLogBytes triggers a snapshot (and log compaction behind it)
	// once this many bytes of transactions were applied since the last
	// one, whatever the consensus plugin's own entry-count policy says;
	// 0 disables it.
	SnapshotLogBytes int64 `koanf:"snapshot_log_bytes"`
	// SnapshotOnShutdown snapshots on a clean shutdown when anything was
	// applied since the last snapshot, so the next start replays nothing.
	SnapshotOnShutdown bool `koanf:"snapshot_on_shutdown"`

	Log LogConfig `koanf:"log"`

	Consensus Slot   `koanf:"-"`
	Storage   Slot   `koanf:"-"`
	Protocols []Slot `koanf:"-"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `koanf:"level"`  // debug, info, warn, error
	Format string `koanf:"format"` // text or json
}

// Slot is one plugin choice: its factory and its decoded config.
type Slot struct {
	Type    string
	Factory plugin.Factory
	Config  any
}

// Defaults are the embedded defaults: a single durable server on
// consensus-raft over storage-bolt, native protocol on 127.0.0.1:2181.
func Defaults() map[string]any {
	return map[string]any{
		"data_dir":                 "./data",
		"node_id":                  1,
		"tick_time":                "2s",
		"min_session_timeout":      "0s",
		"max_session_timeout":      "0s",
		"max_client_conns":         60,
		"max_request_bytes":        1048575,
		"four_letter_words":        []any{"ruok", "srvr", "stat", "mntr", "conf", "isro", "envi", "wchs", "dirs"},
		"container_check_interval": "1s",
		"extended_types":           true,
		"super_digest":             "",
		"reconfig_enabled":         false,
		"snapshot_log_bytes":       64 << 20,
		"local_sessions":           false,
		"local_sessions_upgrading": true,
		"read_only_mode":           false,
		"snapshot_on_shutdown":     true,
		"log":                      map[string]any{"level": "info", "format": "text"},
		"consensus":                map[string]any{"type": "raft"},
		"storage":                  map[string]any{"type": "bolt"},
		"protocols":                []any{map[string]any{"type": "native"}},
	}
}

// Source says where configuration comes from; later sources win.
type Source struct {
	File      string         // YAML file; empty for none
	Env       []string       // environment (os.Environ() form); nil for none
	Overrides map[string]any // flags, as dotted keys
}

// EnvPrefix is the prefix of environment overrides. A double underscore
// nests: CORRAL_STORAGE__SYNC=false sets storage.sync.
const EnvPrefix = "CORRAL_"

// Load builds the configuration from defaults and the given sources.
func Load(src Source) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(Defaults(), "."), nil); err != nil {
		return nil, err
	}
	if src.File != "" {
		if _, err := os.Stat(src.File); err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := k.Load(file.Provider(src.File), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config file %s: %w", src.File, err)
		}
	}
	if src.Env != nil {
		environ := src.Env
		known := Defaults()
		p := env.Provider(".", env.Opt{
			Prefix:      EnvPrefix,
			EnvironFunc: func() []string { return environ },
			TransformFunc: func(key, v string) (string, any) {
				key = strings.ToLower(strings.TrimPrefix(key, EnvPrefix))
				key = strings.ReplaceAll(key, "__", ".")
				// The environment is shared with other programs (and
				// tests' own CORRAL_* switches): only variables naming a
				// config section are overrides; inside a section the
				// usual strict decoding applies.
				top, _, _ := strings.Cut(key, ".")
				if _, ok := known[top]; !ok {
					return "", nil
				}
				return key, v
			},
		})
		if err := k.Load(p, nil); err != nil {
			return nil, fmt.Errorf("environment: %w", err)
		}
	}
	if len(src.Overrides) > 0 {
		if err := k.Load(confmap.Provider(src.Overrides, "."), nil); err != nil {
			return nil, err
		}
	}
	return decode(k.Raw())
}

func decode(raw map[string]any) (*Config, error) {
	var errs []error
	cfg := &Config{}
	top := map[string]any{}
	for key, v := range raw {
		switch key {
		case "consensus", "storage", "protocols":
		default:
			top[key] = v
		}
	}
	if err := strictDecode(top, cfg); err != nil {
		errs = append(errs, err)
	}
	var err error
	if cfg.Consensus, err = resolveSlot(plugin.KindConsensus, "consensus", raw["consensus"]); err != nil {
		errs = append(errs, err)
	}
	if cfg.Storage, err = resolveSlot(plugin.KindStorage, "storage", raw["storage"]); err != nil {
		errs = append(errs, err)
	}
	protos, ok := raw["protocols"].([]any)
	if !ok || len(protos) == 0 {
		errs = append(errs, errors.New("protocols: at least one protocol is required"))
	}
	for i, p := range protos {
		s, err := resolveSlot(plugin.KindProtocol, fmt.Sprintf("protocols[%d]", i), p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg.Protocols = append(cfg.Protocols, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func resolveSlot(kind plugin.Kind, where string, raw any) (Slot, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return Slot{}, fmt.Errorf("%s: must be a map with a type key", where)
	}
	typ, _ := m["type"].(string)
	if typ == "" {
		return Slot{}, fmt.Errorf("%s: missing type", where)
	}
	f, err := plugin.Lookup(kind, typ)
	if err != nil {
		return Slot{}, fmt.Errorf("%s: %w", where, err)
	}
	rest := make(map[string]any, len(m))
	for k, v := range m {
		if k != "type" {
			rest[k] = v
		}
	}
	cfg := f.DefaultConfig()
	if err := strictDecode(rest, cfg); err != nil {
		return Slot{}, fmt.Errorf("%s (%s): %w", where, typ, err)
	}
	if v, ok := cfg.(plugin.Validator); ok {
		if err := v.Validate(); err != nil {
			return Slot{}, fmt.Errorf("%s (%s): %w", where, typ, err)
		}
	}
	return Slot{Type: typ, Factory: f, Config: cfg}, nil
}

// strictDecode decodes m over dst, refusing unknown keys.
func strictDecode(m map[string]any, dst any) error {
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           dst,
		TagName:          "koanf",
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		Metadata:         &md,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(m); err != nil {
		return cleanDecodeError(err)
	}
	return nil
}

// cleanDecodeError turns mapstructure's wording into "unknown key(s): a, b".
func cleanDecodeError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "has invalid keys: "); i >= 0 {
		keys := strings.Split(strings.TrimSpace(msg[i+len("has invalid keys: "):]), ", ")
		sort.Strings(keys)
		return fmt.Errorf("unknown key(s): %s", strings.Join(keys, ", "))
	}
	return err
}

// Validate checks cross-field rules and fills derived defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.TickTime <= 0 {
		errs = append(errs, errors.New("tick_time: must be positive"))
	}
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = 2 * c.TickTime
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = 20 * c.TickTime
	}
	if c.MinSessionTimeout > c.MaxSessionTimeout {
		errs = append(errs, fmt.Errorf("min_session_timeout (%s) is above max_session_timeout (%s)", c.MinSessionTimeout, c.MaxSessionTimeout))
	}
	if c.MaxRequestBytes <= 0 {
		errs = append(errs, errors.New("max_request_bytes: must be positive"))
	}
	if c.SnapshotLogBytes < 0 {
		errs = append(errs, errors.New("snapshot_log_bytes: must be 0 (off) or positive"))
	}
	if c.ContainerCheckInterval <= 0 {
		errs = append(errs, errors.New("container_check_interval: must be positive"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: must be set"))
	}
	if c.NodeID == 0 {
		errs = append(errs, errors.New("node_id: must be at least 1"))
	}
	seen := map[uint64]bool{}
	found := len(c.Members) == 0
	for i, m := range c.Members {
		if m.ID == 0 {
			errs = append(errs, fmt.Errorf("members[%d]: id must be at least 1", i))
		}
		if seen[m.ID] {
			errs = append(errs, fmt.Errorf("members[%d]: duplicate id %d", i, m.ID))
		}
		seen[m.ID] = true
		if m.PeerAddr == "" {
			errs = append(errs, fmt.Errorf("members[%d]: peer address is required", i))
		}
		if m.ID == c.NodeID {
			found = true
		}
	}
	if !found {
		errs = append(errs, fmt.Errorf("node_id %d is not in members", c.NodeID))
	}
	if c.SuperDigest != "" && !strings.Contains(c.SuperDigest, ":") {
		errs = append(errs, errors.New("super_digest: want user:base64digest"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	return errors.Join(errs...)
}

// Effective renders a config back into a plain map (for `config default`
// and `config validate` output).
func Effective(c *Config) map[string]any {
	out := structToMap(reflect.ValueOf(*c))
	slot := func(s Slot) map[string]any {
		m := structToMap(reflect.ValueOf(s.Config).Elem())
		m["type"] = s.Type
		return m
	}
	out["consensus"] = slot(c.Consensus)
	out["storage"] = slot(c.Storage)
	var protos []any
	for _, p := range c.Protocols {
		protos = append(protos, slot(p))
	}
	out["protocols"] = protos
	return out
}

func structToMap(v reflect.Value) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		out[tag] = plain(v.Field(i))
	}
	return out
}

func plain(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Struct:
		return structToMap(v)
	case reflect.Slice:
		if v.IsNil() {
			return []any{}
		}
		s := make([]any, v.Len())
		for i := range s {
			s[i] = plain(v.Index(i))
		}
		return s
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plain(v.Elem())
	}
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	return v.Interface()
}
