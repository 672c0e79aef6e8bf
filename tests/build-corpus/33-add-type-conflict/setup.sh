# An archive whose entries clash in type with paths of the base image (localhost/layers):
# a file where the image has a non-empty directory, a directory where it has a file, a file
# where it has a dangling symlink, a symlink where it has a directory.
set -e
mkdir -p tree/data/hello.txt
printf 'now a file\n' > tree/data/opaque
printf 'inside\n' > tree/data/hello.txt/inner.txt
printf 'no longer a link\n' > tree/data/dangling-link
ln -s opaque tree/data/empty-dir
tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf clash.tar -C tree data
rm -rf tree
