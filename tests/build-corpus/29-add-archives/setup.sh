# Archives for ADD: the same small tree in every compression ADD knows.
set -e
mkdir -p tree/etc/app tree/empty tree/bin
printf 'key=value\n' > tree/etc/app/app.conf
printf '#!/bin/sh\necho tool\n' > tree/bin/tool
chmod 0755 tree/bin/tool
printf 'owned\n' > tree/etc/app/owned.txt
ln -s app/app.conf tree/etc/app.conf
T="tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner"
$T -cf plain.tar -C tree .
$T -czf gzipped.tar.gz -C tree .
$T -cjf bzipped.tar.bz2 -C tree .
$T -cJf xzed.tar.xz -C tree .
$T -cf misnamed.data -C tree etc
# ownership kept from the archive
tar --sort=name --mtime=@1700000000 --owner=1000 --group=1000 --numeric-owner -cf owned.tar -C tree etc/app/owned.txt
rm -rf tree
