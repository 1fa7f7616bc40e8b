#!/bin/sh
# man/commands.sh PROGRAM — a help2man include file (man/meson.build) with a
# COMMANDS section: each command PROGRAM's --help lists under "commands:",
# with what "PROGRAM COMMAND --help" prints, as preformatted text. The
# commands are read from the program itself, so the page cannot miss one.
set -eu
prog=$1
name=$(basename "$prog")
cmds=$("$prog" --help | awk '/^commands:/ { on = 1; next }
                             on && /^  [a-z]/ { print $1; next }
                             on { exit }')
[ -n "$cmds" ] || { echo "commands.sh: $prog --help lists no commands" >&2; exit 1; }
echo "[COMMANDS]"
for c in $cmds; do
    echo ".SS \"$name $c\""
    echo ".nf"
    # roff: a backslash is \e; a line starting with . or ' gets \& first
    "$prog" "$c" --help | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
    echo ".fi"
done
