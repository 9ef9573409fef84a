package dump

import (
	"sync"

	"github.com/mbtool/mbtool/guid"
)

// guidSet is the set of GUIDs already embedded in the dump. It costs about
// 40 bytes per message, the one thing in a dump that grows with its size.
type guidSet struct {
	mu sync.Mutex
	m  map[guid.GUID]struct{}
}

func newGUIDSet() *guidSet { return &guidSet{m: make(map[guid.GUID]struct{})} }

func (s *guidSet) has(g guid.GUID) bool {
	s.mu.Lock()
	_, ok := s.m[g]
	s.mu.Unlock()
	return ok
}

func (s *guidSet) add(g guid.GUID) {
	s.mu.Lock()
	s.m[g] = struct{}{}
	s.mu.Unlock()
}
