#!/bin/sh
# manpage.sh - flowmatch(1) from the tool's own --help texts, so the manual
# and --help cannot drift: the overview, then each command's --help verbatim.
#
#   sh tools/manpage.sh ./flowmatch > flowmatch.1
set -eu
fm=${1:-./flowmatch}
version=$("$fm" --version | sed 's/^flowmatch //')
# roff: a backslash is \e; a line starting with . or ' would be a request
esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
cat <<HEAD
.TH FLOWMATCH 1 "" "flowmatch $version" "User Commands"
.SH NAME
flowmatch \\- flow-matching generative models in plain C
.SH SYNOPSIS
.B flowmatch
.I COMMAND
.RI [ options ]
.SH DESCRIPTION
.nf
HEAD
"$fm" --help | esc
echo ".fi"
echo ".SH COMMANDS"
for cmd in $("$fm" --help | sed -n '/^commands:/,/^$/p' | awk 'NF > 1 && $1 != "commands:" && $1 != "version" {print $1}'); do
    echo ".SS $cmd"
    echo ".nf"
    "$fm" "$cmd" --help | esc
    echo ".fi"
done
cat <<TAIL
.SH EXIT STATUS
0 on success, 1 for a failure of the work, 2 for a usage error (a bad flag or
value); a run stopped by a signal saves its work and exits 128 + the signal.
.SH SEE ALSO
The documentation in the source tree: README.md and docs/.
TAIL
