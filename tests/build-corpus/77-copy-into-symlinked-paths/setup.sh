# An archive that adds absolute and relative directory symlinks to the image.
set -e
mkdir -p tree
ln -s /srv tree/srv-abs
ln -s ../srv tree/srv-rel
tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf links.tar -C tree .
rm -rf tree
