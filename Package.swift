// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "ShelterSync",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "shelter", targets: ["CLI"]),
        .library(name: "SyncCore", targets: ["SyncCore"]),
        .library(name: "ShelterDomain", targets: ["ShelterDomain"]),
        .library(name: "ClientKit", targets: ["ClientKit"]),
        .library(name: "Server", targets: ["Server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "SyncCore",
            dependencies: [.product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(
            name: "ShelterDomain",
            dependencies: ["SyncCore"]
        ),
        .target(
            name: "ClientKit",
            dependencies: [
                "SyncCore", "ShelterDomain",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Server",
            dependencies: [
                "SyncCore", "ShelterDomain",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "CLI",
            dependencies: [
                "ClientKit", "Server", "ShelterDomain", "SyncCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "TestSupport",
            dependencies: ["SyncCore", "ShelterDomain", "ClientKit", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "SyncCoreTests", dependencies: ["SyncCore", "TestSupport"]),
        .testTarget(name: "ShelterDomainTests", dependencies: ["ShelterDomain", "SyncCore"]),
        .testTarget(
            name: "ClientKitTests",
            dependencies: ["ClientKit", "ShelterDomain", "SyncCore", "TestSupport",
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(name: "CLITests", dependencies: ["CLI", "TestSupport"]),
    ]
)

// House style: the same strictness for every target (as swift-log and Hummingbird do).
for target in package.targets {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
