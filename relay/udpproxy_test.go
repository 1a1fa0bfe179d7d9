package relay_test

import (
	"net"
	"sync"
	"testing"
)

// udpProxy stands between clients and a relay like a NAT: each client
// source address gets its own upstream socket, so the relay sees a client
// that changes its local socket arrive from a new address. A source can be
// cut off, as when a phone leaves Wi-Fi.
type udpProxy struct {
	ln       *net.UDPConn
	upstream *net.UDPAddr

	mu      sync.Mutex
	flows   map[string]*net.UDPConn
	blocked map[string]bool
	seen    map[string]int       // packets from each client source
	arrived map[string]chan bool // closed at the first packet from a source
}

func startUDPProxy(t *testing.T, upstream string) *udpProxy {
	t.Helper()
	up, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &udpProxy{ln: ln, upstream: up, flows: map[string]*net.UDPConn{},
		blocked: map[string]bool{}, seen: map[string]int{}, arrived: map[string]chan bool{}}
	go p.run()
	t.Cleanup(p.close)
	return p
}

func (p *udpProxy) addr() string { return p.ln.LocalAddr().String() }

// firstPacket returns a channel closed when a packet from src arrives.
func (p *udpProxy) firstPacket(src string) <-chan bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, ok := p.arrived[src]
	if !ok {
		ch = make(chan bool)
		p.arrived[src] = ch
		if p.seen[src] > 0 {
			close(ch)
		}
	}
	return ch
}

// block drops everything from and to src from now on.
func (p *udpProxy) block(src string) {
	p.mu.Lock()
	p.blocked[src] = true
	p.mu.Unlock()
}

func (p *udpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.flows {
		f.Close()
	}
}

func (p *udpProxy) run() {
	buf := make([]byte, 65536)
	for {
		n, src, err := p.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		key := src.String()
		p.mu.Lock()
		if p.blocked[key] {
			p.mu.Unlock()
			continue
		}
		p.seen[key]++
		if ch, ok := p.arrived[key]; ok && p.seen[key] == 1 {
			close(ch)
		}
		flow, ok := p.flows[key]
		if !ok {
			flow, err = net.DialUDP("udp", nil, p.upstream)
			if err != nil {
				p.mu.Unlock()
				continue
			}
			p.flows[key] = flow
			go p.back(flow, src)
		}
		p.mu.Unlock()
		_, _ = flow.Write(buf[:n])
	}
}

// back copies the relay's packets on one flow to its client.
func (p *udpProxy) back(flow *net.UDPConn, client *net.UDPAddr) {
	buf := make([]byte, 65536)
	for {
		n, err := flow.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		blocked := p.blocked[client.String()]
		p.mu.Unlock()
		if !blocked {
			_, _ = p.ln.WriteToUDP(buf[:n], client)
		}
	}
}
