#!/usr/bin/env bash
# Builds a libicudata holding only the items of LIST (icu-data.txt), with
# the soname and entry point of Debian's libicudata, which holds all of
# ICU's data (31 MB, mostly locales, collation and dictionaries nq never
# opens) as one symbol. The data is cut out of Debian's library, the items
# picked with icupkg, and the library built the way ICU's pkgdata builds
# one (genccode's assembly, linked -shared). Needs libicu-dev and
# icu-devtools; writes DIR/libicudata.so.MAJOR.
#
#   icu-data.sh LIST DIR
set -euo pipefail
list=$(readlink -f "$1") dir=$2
major=$(pkg-config --modversion icu-uc | cut -d. -f1)
lib=$(pkg-config --variable=libdir icu-uc)/libicudata.so.$major
sym=icudt${major}_dat
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The symbol's place in the file: its address less its section's, plus
# the section's offset.
read -r addr size sec < <(readelf -sW "$lib" |
	awk -v s="$sym" '$8 == s {print $2, $3, $7}')
read -r saddr soff < <(readelf -SW "$lib" |
	sed 's/^ *\[ *\([0-9]*\)\]/\1/' | awk -v n="$sec" '$1 == n {print $4, $5}')
mkdir "$tmp/in" "$tmp/items" "$tmp/out"
dd if="$lib" of="$tmp/all.dat" bs=1M iflag=skip_bytes,count_bytes \
	skip=$((0x$addr - 0x$saddr + 0x$soff)) count=$((size)) status=none
# The package's name (icudt72l: little-endian) prefixes its items, and
# icupkg wants it as the file's name.
name=$(dd if="$tmp/all.dat" bs=64k count=1 status=none |
	grep -ao 'icudt[0-9]*[lb]/' | sed -n 1p)
name=${name%/}
mv "$tmp/all.dat" "$tmp/in/$name.dat"
# icupkg takes a list of items from a file named *.txt (an absolute path:
# a relative one is taken in its directories).
icupkg -x "$list" -d "$tmp/items" "$tmp/in/$name.dat"
icupkg -a "$list" -s "$tmp/items" new "$tmp/out/$name.dat"
genccode -e "icudt$major" -a gcc -d "$tmp/out" "$tmp/out/$name.dat" >/dev/null
mkdir -p "$dir"
gcc -shared -Wl,-soname,"libicudata.so.$major" -Wl,-z,relro \
	-o "$dir/libicudata.so.$major" "$tmp/out/${name}_dat.S"
strip "$dir/libicudata.so.$major"
echo "icu-data.sh: libicudata.so.$major: $(icupkg -l "$tmp/out/$name.dat" | wc -l) items," \
	"$(stat -c %s "$dir/libicudata.so.$major") bytes (Debian's: $(stat -L -c %s "$lib"))"
