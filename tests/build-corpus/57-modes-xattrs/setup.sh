# Files with unusual permission bits and an extended attribute.
set -e
mkdir -p tree/sticky tree/private-dir
printf 'secret\n' > tree/owner-only; chmod 0600 tree/owner-only
printf 'ro\n' > tree/read-only; chmod 0444 tree/read-only
printf 'odd\n' > tree/odd-mode; chmod 0751 tree/odd-mode
printf 'none\n' > tree/no-perms; chmod 0000 tree/no-perms
chmod 1777 tree/sticky
chmod 0700 tree/private-dir
printf 'x\n' > tree/xattr.txt
setfattr -n user.corpus -v hello tree/xattr.txt
