# A zstd-compressed tar for ADD.
set -e
mkdir -p tree/conf
printf 'zstd\n' > tree/conf/z.txt
tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf - -C tree . | zstd -q -19 -o archive.tar.zst
rm -rf tree
