// Package protocolnative is the ZooKeeper wire-protocol frontend: a TCP
// listener speaking jute-framed requests, replies and watch notifications,
// the session handshake and four-letter words. Sessions, ordering, watches
// and the tree belong to the framework's protocol.Backend.
package protocolnative

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/corral-dev/corral/framework/plugin"
	"github.com/corral-dev/corral/framework/protocol"
)

// ID is the plugin id.
const ID plugin.ID = "protocol.native"

// defaultMaxRequestBytes is jute.maxbuffer's default (0xfffff), used when the
// backend leaves Options.MaxRequestBytes at 0.
const defaultMaxRequestBytes = 0xfffff

// Config is the user-facing configuration.
type Config struct {
	// Listen is the client address (ZooKeeper's clientPortAddress:clientPort).
	Listen string `koanf:"listen"`
	// MaxConnections caps open client connections in total (0 = unlimited).
	// The per-IP cap comes from the backend (maxClientCnxns).
	MaxConnections int `koanf:"max_connections"`
	// HandshakeTimeout bounds how long a new connection may take to send its
	// ConnectRequest or four-letter word.
	HandshakeTimeout time.Duration `koanf:"handshake_timeout"`
	// MaxOutboundBytes bounds the encoded output queued for one connection;
	// a client that stops reading past it is disconnected rather than
	// letting its queue grow without limit.
	MaxOutboundBytes int `koanf:"max_outbound_bytes"`
	// CloseLinger bounds how long a closing connection may take to deliver
	// its last output (final reply, 4lw text) before it is cut.
	CloseLinger time.Duration `koanf:"close_linger"`
}

// DefaultConfig returns safe defaults: loopback only, no total cap.
func DefaultConfig() *Config {
	return &Config{
		Listen:           "127.0.0.1:2181",
		MaxConnections:   0,
		HandshakeTimeout: 10 * time.Second,
		MaxOutboundBytes: 64 << 20,
		CloseLinger:      2 * time.Second,
	}
}

// Validate checks the decoded configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: must not be empty"))
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, errors.New("max_connections: must be >= 0"))
	}
	if c.HandshakeTimeout <= 0 {
		errs = append(errs, errors.New("handshake_timeout: must be > 0"))
	}
	if c.MaxOutboundBytes <= 0 {
		errs = append(errs, errors.New("max_outbound_bytes: must be > 0"))
	}
	if c.CloseLinger <= 0 {
		errs = append(errs, errors.New("close_linger: must be > 0"))
	}
	return errors.Join(errs...)
}

type factory struct{}

func (factory) ID() plugin.ID      { return ID }
func (factory) DefaultConfig() any { return DefaultConfig() }

func (factory) New(_ context.Context, set plugin.Settings, cfg any) (protocol.Frontend, error) {
	c, ok := cfg.(*Config)
	if !ok || c == nil {
		return nil, fmt.Errorf("%s: config is %T, want *Config", ID, cfg)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: invalid configuration: %w", ID, err)
	}
	return NewFrontend(*c, set.Logger), nil
}

func init() { plugin.Register(factory{}) }

// Frontend serves the native protocol on one listener.
type Frontend struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	started  bool
	closed   bool
	ln       net.Listener
	backend  protocol.Backend
	opts     protocol.Options
	conns    map[*conn]struct{}
	perIP    map[string]int
	ctx      context.Context // parent of every connection's context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutdown chan struct{}
}

// NewFrontend returns an unstarted frontend. A nil logger discards.
func NewFrontend(cfg Config, log *slog.Logger) *Frontend {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Frontend{
		cfg:      cfg,
		log:      log.With("plugin", string(ID)),
		conns:    make(map[*conn]struct{}),
		perIP:    make(map[string]int),
		shutdown: make(chan struct{}),
	}
}

// Start binds the listener synchronously and serves in the background.
func (f *Frontend) Start(ctx context.Context, b protocol.Backend) error {
	if b == nil {
		return fmt.Errorf("%s: nil backend", ID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started || f.closed {
		return fmt.Errorf("%s: already started or shut down", ID)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", f.cfg.Listen)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", ID, f.cfg.Listen, err)
	}
	f.started = true
	f.ln = ln
	f.backend = b
	f.opts = b.Options()
	if f.opts.MaxRequestBytes <= 0 {
		f.opts.MaxRequestBytes = defaultMaxRequestBytes
	}
	// Connections outlive Start's context: they end with Shutdown.
	f.ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	f.wg.Add(1)
	go f.acceptLoop()
	f.log.Info("listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the bound address, or nil before Start.
func (f *Frontend) Addr() net.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln == nil {
		return nil
	}
	return f.ln.Addr()
}

// Shutdown closes the listener and every connection (each detaches its
// session) and waits for all goroutines or ctx. It is safe to call without
// Start and more than once.
func (f *Frontend) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.shutdown)
		if f.ln != nil {
			_ = f.ln.Close()
		}
		for c := range f.conns {
			c.abort()
		}
		if f.cancel != nil {
			f.cancel()
		}
	}
	f.mu.Unlock()

	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: shutdown: %w", ID, ctx.Err())
	}
}

func (f *Frontend) acceptLoop() {
	defer f.wg.Done()
	var backoff time.Duration
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			select {
			case <-f.shutdown:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http
			// does instead of spinning.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			f.log.Warn("accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-f.shutdown:
				return
			}
			continue
		}
		backoff = 0
		f.admit(nc)
	}
}

// admit registers a new connection or refuses it over a connection cap.
func (f *Frontend) admit(nc net.Conn) {
	ip := remoteIP(nc.RemoteAddr())
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = nc.Close()
		return
	}
	if max := f.opts.MaxClientConnsPerIP; max > 0 && f.perIP[ip] >= max {
		f.mu.Unlock()
		// ZooKeeper's wording, so existing log alerts keep matching.
		f.log.Warn(fmt.Sprintf("Too many connections from /%s - max is %d", ip, max))
		_ = nc.Close()
		return
	}
	if max := f.cfg.MaxConnections; max > 0 && len(f.conns) >= max {
		f.mu.Unlock()
		f.log.Warn(fmt.Sprintf("Too many connections - max is %d", max), "remote", nc.RemoteAddr().String())
		_ = nc.Close()
		return
	}
	c := newConn(f, nc, ip)
	f.conns[c] = struct{}{}
	f.perIP[ip]++
	f.wg.Add(2)
	f.mu.Unlock()
	go c.writeLoop()
	go c.serve()
}

func (f *Frontend) remove(c *conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.conns[c]; !ok {
		return
	}
	delete(f.conns, c)
	if f.perIP[c.ip]--; f.perIP[c.ip] <= 0 {
		delete(f.perIP, c.ip)
	}
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Interface guards.
var (
	_ protocol.Factory  = factory{}
	_ protocol.Frontend = (*Frontend)(nil)
	_ plugin.Validator  = (*Config)(nil)
)
