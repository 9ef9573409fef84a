package commands

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// parsedArgs is the command line split the way urfave/cli will read it.
type parsedArgs struct {
	args    []string     // the reordered command line, for app.Run
	command *cli.Command // the subcommand named, or nil
	flags   []string     // the subcommand's flags (names without dashes), as given
}

// has reports whether the subcommand was given flag name (or one of its
// aliases), not counting an explicit =false.
func (p parsedArgs) has(names ...string) bool {
	for _, f := range p.flags {
		name, val, _ := strings.Cut(f, "=")
		for _, n := range names {
			if name == n && val != "false" {
				return true
			}
		}
	}
	return false
}

// interspersed returns args with each subcommand's flags moved before its
// arguments, so that "mbtool verify FILE --json" means what "mbtool verify
// --json FILE" means, as with most Go and GNU tools. urfave/cli v2 (Go's
// flag package underneath) stops at the first argument and would take
// "--json" as a second file name.
//
// A flag's value is the next word unless the flag is boolean or written
// --name=value; which flags are boolean comes from the command's own flag
// definitions, the same ones --help shows. "--" ends the flags: what
// follows stays an argument, even when it starts with a dash. A flag the
// command does not define is moved like a boolean one, for the parser to
// refuse with its usual message.
func interspersed(app *cli.App, args []string) parsedArgs {
	// urfave/cli's shell completion asks with this flag last, and looks
	// for it there.
	const complete = "--generate-bash-completion"
	if n := len(args); n > 1 && args[n-1] == complete {
		p := interspersed(app, args[:n-1])
		p.args = append(p.args, complete)
		p.flags = nil // a completion request, not a run
		return p
	}
	if len(args) < 2 {
		return parsedArgs{args: args}
	}
	out := []string{args[0]}
	i := 1
	// mbtool's own flags, before the command's name.
	for i < len(args) {
		a := args[i]
		if a == "--" || !isFlag(a) {
			break
		}
		out = append(out, a)
		i++
		if takesValue(app.Flags, a) && i < len(args) {
			out = append(out, args[i])
			i++
		}
	}
	if i >= len(args) || args[i] == "--" {
		return parsedArgs{args: args}
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return parsedArgs{args: args}
	}
	out = append(out, args[i])
	i++
	var flags, operands, names []string
	dashdash := false
	for i < len(args) {
		a := args[i]
		i++
		switch {
		case dashdash || !isFlag(a):
			operands = append(operands, a)
		case a == "--":
			dashdash = true
		default:
			flags = append(flags, a)
			names = append(names, strings.TrimLeft(a, "-"))
			if takesValue(cmd.Flags, a) && i < len(args) {
				flags = append(flags, args[i])
				i++
			}
		}
	}
	out = append(out, flags...)
	if dashdash {
		out = append(out, "--")
	}
	out = append(out, operands...)
	return parsedArgs{args: out, command: cmd, flags: names}
}

// isFlag reports whether a command-line word is a flag ("-" alone is the
// standard input or output, an argument).
func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

// takesValue reports whether flag word a (such as "-o" or "--user") is one
// of flags that takes its value from the next word.
func takesValue(flags []cli.Flag, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				df, ok := f.(cli.DocGenerationFlag)
				return ok && df.TakesValue()
			}
		}
	}
	return false
}
