# Empty directories (git keeps none).
set -e
mkdir -p tree/empty tree/nested/empty/deeper tree/with-mode
chmod 0750 tree/with-mode
mkdir -p lone-empty
