app/src/lib.c
