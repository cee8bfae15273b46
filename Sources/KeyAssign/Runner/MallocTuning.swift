/// glibc malloc settings for a run. URLSession allocates and frees a burst of small objects
/// per request on many Dispatch threads, each with its own malloc arena; with the default
/// dynamic trim threshold every arena keeps giving its top back to the kernel (madvise) and
/// faulting it in again, which cost a third of the run's system time. Measured with 20,000
/// rows (scripts/bench-run.sh): system time 5.5 → 3.4 s, CPU per row 0.62 → 0.46 ms.
/// The memory kept is bounded by the trim threshold per arena (a few arenas on 2 cores).
enum MallocTuning {
    static func keepFreedMemory() {
        #if os(Linux)
        _ = glibcMallopt(mallocTrimThreshold, 64 << 20)
        _ = glibcMallopt(mallocTopPad, 16 << 20)
        #endif
    }

    #if os(Linux)
    // <malloc.h> values; Glibc's Swift module does not export mallopt or its constants.
    private static let mallocTrimThreshold: Int32 = -1
    private static let mallocTopPad: Int32 = -2
    #endif
}

#if os(Linux)
@_silgen_name("mallopt")
private func glibcMallopt(_ option: Int32, _ value: Int32) -> Int32
#endif
