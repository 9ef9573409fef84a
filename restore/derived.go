package restore

import (
	"fmt"
	"strings"

	"github.com/mbtool/mbtool/spill"
)

// derivedJob is one run of a Cyrus program that derives, from the
// restored mailboxes, state only Cyrus's code writes. Cyrus derives it as
// it appends (sync_server does for restore --server); for mailboxes
// written behind its back, restore has Cyrus derive it after the commit.
type derivedJob struct {
	item string   // the summary item a failure is reported under
	what string   // what is left undone if it fails
	prog string   // the program, in Options.CyrusBin
	args []string // its arguments after -C
}

func (j derivedJob) String() string { return j.prog + " " + strings.Join(j.args, " ") }

// derivedJobs are the jobs for the mailboxes this run creates, replaces or
// merges into, in order:
//
//   - with conversations: yes, `ctl_conversationsdb -R USER` for each
//     owner: Cyrus keeps a user's conversations.db (threads, counts, the
//     message-id map a new reply is threaded by, folder numbers) as it
//     appends, so for restored mailboxes it has nothing and replies would
//     start new threads. The records keep their thread ids (CID) as
//     dumped; -R rereads the user's mailboxes and registers them
//     (imap/ctl_conversationsdb.c do_recalc, mailbox_add_conversations).
//     -b is not enough: it builds only what is registered already.
//   - with archive_enabled: yes, `cyr_expire -x -c -A <archive_after> -u
//     USER` for each owner and `-p NAME` for each shared mailbox: Cyrus
//     archives a message as it appends it when its policy says so
//     (imap/mailbox.c mailbox_should_archive: big, old or in a deleted
//     mailbox; flagged ones kept with archive_keepflagged), moving the
//     file to the archive partition and its cache record to the archive
//     cache; cyr_expire -A applies the same policy to what restore wrote.
//     -x and -c keep it from expunging by the expire annotation or
//     pruning conversations.
func (rs *restorer) derivedJobs() ([]derivedJob, error) {
	conv, arch := rs.cfg.Switch("conversations", false), rs.cfg.Switch("archive_enabled", false)
	if !conv && !arch {
		return nil, nil
	}
	after := rs.cfg.Raw["archive_after"]
	if after == "" {
		after = "7d" // imapoptions' default
	}
	var jobs []derivedJob
	seen := map[string]bool{}
	for h := range rs.boxes.all() {
		b, err := spill.Peek(rs.parked, h)
		if err != nil {
			return nil, err
		}
		if a := b.res.Action; a != ActionCreate && a != ActionReplace && a != ActionMerge {
			continue
		}
		if b.owner == "" {
			if arch {
				jobs = append(jobs, derivedJob{item: b.name, what: "the restored messages were not archived (archive_enabled: yes)",
					prog: "cyr_expire", args: []string{"-x", "-c", "-A", after, "-p", b.name}})
			}
			continue
		}
		if seen[b.owner] {
			continue
		}
		seen[b.owner] = true
		if conv {
			jobs = append(jobs, derivedJob{item: "user " + b.owner,
				what: "the conversations database was not rebuilt (conversations: yes): replies would start new threads",
				prog: "ctl_conversationsdb", args: []string{"-R", b.owner}})
		}
		if arch {
			jobs = append(jobs, derivedJob{item: "user " + b.owner, what: "the restored messages were not archived (archive_enabled: yes)",
				prog: "cyr_expire", args: []string{"-x", "-c", "-A", after, "-u", b.owner}})
		}
	}
	return jobs, nil
}

// checkDerived, before the commit and in a dry run too, makes sure each
// program runDerived needs is there. A missing one is reported for each
// job it would have run, and runDerived skips those jobs.
func (rs *restorer) checkDerived() error {
	jobs, err := rs.derivedJobs()
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if _, err := rs.tools.Path(j.prog); err != nil {
			rs.derivedProblem(j, err)
			if rs.missingTools == nil {
				rs.missingTools = map[string]bool{}
			}
			rs.missingTools[j.prog] = true
		}
	}
	return nil
}

// runDerived runs the derived jobs of what the commit wrote, as the cyrus
// user. A failure is a warning naming the command to run.
func (rs *restorer) runDerived() error {
	jobs, err := rs.derivedJobs()
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if rs.missingTools[j.prog] {
			continue
		}
		if _, err := rs.tools.Run(rs.ctx, j.prog, j.args...); err != nil {
			rs.derivedProblem(j, err)
		}
	}
	return nil
}

func (rs *restorer) derivedProblem(j derivedJob, err error) {
	rs.problem(j.item, fmt.Errorf("%s (%w); run `%s` as the cyrus user", j.what, err, j))
}
