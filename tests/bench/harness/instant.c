/* The harness's instant FastCGI responder (libfcgi): answers every request at
   once, so that what is measured is the gateway in front of it. Built by
   tests/bench/harness.sh; run by fastgate as a pool and by spawn-fcgi for nginx. */
#include <fcgi_stdio.h>
int main(void) {
    while (FCGI_Accept() >= 0)
        printf("Content-Type: text/plain\r\n\r\nHello, world\n");
    return 0;
}
