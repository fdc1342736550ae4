// Does AddressSanitizer work with this toolchain here? One byte written past an 8-byte heap
// buffer: an instrumented build stops with a heap-buffer-overflow report, an uninstrumented one
// runs on silently. Contrib/sanitize/run address runs this first and stops unless ASan reports,
// so a run that finds nothing means the instrumentation was on.
let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 8)
buffer.initialize(repeating: 0, count: 8)
let index = CommandLine.arguments.count + 7  // 8, but not a constant the compiler can see through
buffer[index] = 1
print("wrote past the buffer unnoticed:", buffer[0])
buffer.deallocate()
