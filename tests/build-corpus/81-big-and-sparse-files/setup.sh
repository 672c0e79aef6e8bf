# A 6 MiB file of varied bytes and a 32 MiB sparse file with data at both ends.
set -e
mkdir -p big
awk 'BEGIN { for (i = 0; i < 98304; i++) printf "%063d\n", i * 7919 }' > big/six-mib.txt
truncate -s 32M big/sparse.img
printf 'start' | dd of=big/sparse.img conv=notrunc status=none
printf 'end' | dd of=big/sparse.img bs=1 seek=$((32 * 1024 * 1024 - 3)) conv=notrunc status=none
