# Context files with setuid and setgid bits.
set -e
mkdir -p tree/setgid-dir
printf '#!/bin/sh\n' > tree/setuid-root; chmod 4755 tree/setuid-root
printf '#!/bin/sh\n' > tree/setgid; chmod 2711 tree/setgid
printf '#!/bin/sh\n' > tree/both; chmod 6750 tree/both
chmod 2775 tree/setgid-dir
