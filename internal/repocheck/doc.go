// Package repocheck holds tests about the repository itself: that it
// stands on its own (no file points at notes kept outside it) and that
// the comments' citations of docs/cyrus name sections that exist.
package repocheck
