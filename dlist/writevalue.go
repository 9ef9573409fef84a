package dlist

import "io"

// WriteLine writes a whole line: verb SP name SP value CRLF, or verb CRLF
// for a nil Value, or verb SP text CRLF for a status line (Text set).
func (w *Writer) WriteLine(l *Line) error {
	if w.err != nil {
		return w.err
	}
	if l.Text != "" {
		if !(l.Verb == "OK" || l.Verb == "NO" || l.Verb == "BAD") || !validText(l.Text) {
			w.invalid("status line %q %q is not printable", l.Verb, l.Text)
			return w.err
		}
		if w.inLine {
			w.invalid("WriteLine: previous line not ended")
			return w.err
		}
		w.buf = append(w.buf, l.Verb...)
		w.buf = append(w.buf, ' ')
		w.buf = append(w.buf, l.Text...)
		w.buf = append(w.buf, '\r', '\n')
		w.maybeFlush()
		return w.err
	}
	if l.Value == nil {
		w.beginLine(l.Verb, "", false)
	} else {
		w.beginLine(l.Verb, l.Value.Key, true)
		w.writeTree(l.Value)
	}
	return w.EndLine()
}

// WriteValue writes v at the current position: as the line's value after
// BeginLine, as a list item, or inside a KVList, where v.Key is written as
// its key unless Key was just called. Children of a KVList are written
// with their Keys; the Keys of List items are not printed (as in Cyrus).
func (w *Writer) WriteValue(v *Value) error {
	if w.err != nil {
		return w.err
	}
	if v == nil {
		w.invalid("WriteValue(nil)")
		return w.err
	}
	if n := len(w.stack); n > 0 && w.stack[n-1].kv && !w.stack[n-1].keyed {
		w.Key(v.Key)
	}
	w.writeTree(v)
	return w.err
}

// writeTree writes v and its descendants without recursion.
func (w *Writer) writeTree(v *Value) {
	if !w.writeNode(v) {
		return
	}
	stack := append(w.tree[:0], treeFrame{v: v})
	for len(stack) > 0 && w.err == nil {
		f := &stack[len(stack)-1]
		if f.i == len(f.v.Children) {
			w.EndList()
			stack = stack[:len(stack)-1]
			continue
		}
		c := f.v.Children[f.i]
		f.i++
		if c == nil {
			w.invalid("nil child in a %s", f.v.Kind)
			break
		}
		if f.v.Kind == KVList {
			w.Key(c.Key)
		}
		if w.writeNode(c) {
			stack = append(stack, treeFrame{v: c})
		}
	}
	clear(stack)
	w.tree = stack[:0]
}

// writeNode writes a scalar, or opens a container and reports true.
func (w *Writer) writeNode(v *Value) bool {
	switch v.Kind {
	case Atom:
		if w.item() {
			w.buf = appendAString(w.buf, v.Data, w.sync)
			w.scalarDone()
		}
	case Literal:
		w.Bytes(v.Data)
	case Nil:
		w.Nil()
	case Flag:
		w.Flag(string(v.Data))
	case File:
		if int64(len(v.Data)) != v.File.Size {
			w.invalid("file value holds %d bytes, header says %d", len(v.Data), v.File.Size)
			return false
		}
		w.File(v.File.Partition, v.File.GUID, v.File.Size, &sliceReader{b: v.Data})
	case List:
		w.BeginList()
		return w.err == nil
	case KVList:
		w.BeginKVList()
		return w.err == nil
	default:
		w.invalid("cannot write a value of kind %s", v.Kind)
	}
	return false
}

// sliceReader is a minimal bytes.Reader.
type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// Marshal prints v alone, as Cyrus's dlist_printbuf does for the values it
// stores in cyrus.header and mailboxes.db: v's own Key is not printed, and
// literals are non-synchronising ({n+}).
func Marshal(v *Value) ([]byte, error) {
	var buf sliceWriter
	w := &Writer{w: &buf, buf: make([]byte, 0, 256), flushAt: flushAt, inLine: true, hasName: true}
	if v == nil {
		w.invalid("Marshal(nil)")
	} else {
		w.writeTree(v)
	}
	if w.err != nil {
		return nil, w.err
	}
	if buf.b == nil {
		return w.buf, nil
	}
	return append(buf.b, w.buf...), nil
}

// sliceWriter is a minimal bytes.Buffer.
type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}
