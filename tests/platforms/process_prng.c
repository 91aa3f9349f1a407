/* Test-only: lets Rust programs start under Wine 8.0, which lacks ProcessPrng.
 *
 * Rust's std (1.78 and later) seeds its hash maps from ProcessPrng in bcryptprimitives.dll,
 * present on Windows 10 and later. Wine 8.0's bcryptprimitives.dll has no such export, so
 * every Rust program exits with code 53 before main. This DLL provides the one function by
 * forwarding to RtlGenRandom (advapi32's SystemFunction036), which Wine has. tests/platforms.sh
 * compiles it with mingw-w64's gcc into the wine prefix; nothing ships it. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
