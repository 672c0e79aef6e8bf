# Hard links in the build context.
set -e
mkdir -p tree/sub
printf 'shared content\n' > tree/original.txt
ln tree/original.txt tree/link-same-dir.txt
ln tree/original.txt tree/sub/link-in-sub.txt
printf 'alone\n' > tree/alone.txt
