# Symbolic links in the build context (git would keep them, but a copy of the case may not).
set -e
mkdir -p links/sub
printf 'target\n' > links/target.txt
printf 'in sub\n' > links/sub/file.txt
ln -s target.txt links/rel
ln -s /etc/passwd links/abs
ln -s does-not-exist links/dangling
ln -s sub links/dirlink
ln -s ../links/target.txt links/sub/up
