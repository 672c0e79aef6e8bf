# A pax archive that starts with a global extended header (as `git archive` writes one), and
# per-file pax records (a long name, a comment).
set -e
mkdir -p tree/dir
printf 'pax\n' > tree/dir/file.txt
long=tree/dir/$(printf 'n%.0s' $(seq 1 150)).txt
printf 'long\n' > "$long"
tar --format=pax --pax-option=globexthdr.name=pax_global_header,comment=made-by-the-corpus,delete=atime,delete=ctime \
    --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf global.tar -C tree .
rm -rf tree
# the global header really is there
tar -tvf global.tar > /dev/null
head -c 512 global.tar | grep -aq pax_global_header || { echo "no global header" >&2; exit 1; }
