# A fifo and a unix socket in the build context.
set -e
mkdir -p special
printf 'regular\n' > special/regular.txt
mkfifo -m 0640 special/fifo
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("special/socket")'
