# Compressed files that are not tar archives: ADD copies them as they are.
set -e
printf 'just text\n' > note.txt
gzip -n -9 note.txt
printf 'more text\n' > other.txt
xz -9 other.txt
# a file that merely ends in .tar is not an archive either
printf 'not a tar\n' > fake.tar
