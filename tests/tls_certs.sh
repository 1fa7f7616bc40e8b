#!/bin/sh
# tests/tls_certs.sh DIR [IP...]: the certificates the TLS tests use, made
# fresh in DIR with the openssl command (nothing is checked in):
#   ca.pem ca.key               the test CA
#   server.pem server.key       CN=nagare-test-server, for 127.0.0.1, ::1, localhost
#                               and each IP given (a cluster's brokers: each also
#                               shows it as its client certificate)
#   server2.pem server2.key     the same names, CN=nagare-test-server-2 (reload)
#   client.pem client.key       CN=alice,O=nagare-test, signed by the CA
#   rogue-ca.pem rogue.pem rogue.key   a client certificate from another CA
set -eu
dir=$1
shift
cd "$dir"
days=30
subj_ca="/CN=nagare-test-ca"
ext_server="subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"
for ip in "$@"; do
    ext_server="$ext_server,IP:$ip"
done

ca() { # NAME SUBJECT
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days $days \
        -keyout "$1.key" -out "$1.pem" -subj "$2" 2>/dev/null
}
leaf() { # NAME SUBJECT CA EXT SERIAL
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "$5" \
        -days $days -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
ca ca "$subj_ca"
ca rogue-ca "/CN=nagare-rogue-ca"
leaf server "/CN=nagare-test-server" ca "$ext_server" 1001
leaf server2 "/CN=nagare-test-server-2" ca "$ext_server" 1002
leaf client "/O=nagare-test/CN=alice" ca "extendedKeyUsage=clientAuth" 2001
leaf rogue "/CN=mallory" rogue-ca "extendedKeyUsage=clientAuth" 3001
